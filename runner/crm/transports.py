"""Outbox transports for the ``zalo`` and ``email`` channels.

- ``ZaloTransport`` posts a text message through the Zalo Official Account API (v3.0):
  ``POST {base}/v3.0/oa/message/cs`` with ``recipient.user_id`` for one person, or
  ``POST {base}/v3.0/oa/group/message`` with ``recipient.group_id`` for a customer's
  group; the OA access token goes in the ``access_token`` header. Zalo answers HTTP 200
  with a JSON body whose ``error`` is 0 on success and a negative code otherwise.
- ``SmtpTransport`` hands a plain-text e-mail to the configured SMTP server (smtplib).

Neither is idempotent. The Zalo API takes no idempotency key and keeps no record of
what a caller sent before, and SMTP servers deliver every DATA they accept; a repeat is
a second message in the customer's chat or mailbox. So a message whose sender died, or
whose request went out without an answer, becomes ``unknown`` (see runner.service.outbox) and is
never sent again without an admin's decision.

How failures map onto the outbox:

    answer                                  DeliveryError
    could not connect / SMTP 4xx before DATA  transient   (tried again with backoff)
    HTTP 5xx, SMTP 4xx reply                  transient
    HTTP 4xx, Zalo error != 0, SMTP 5xx       final       (failed, an incident)
    no answer after the request went out      uncertain   (unknown, an admin decides)

Which transport serves a channel is chosen by ``RUNNER_TRANSPORTS`` (``zalo=zalo_oa``,
``email=smtp``, see ``runner.crm.settings``); a channel not named there goes to the ``log``
transport, which only records (the demo default). The CRM's extension (``runner.crm.extension``)
gives the runner ``zalo_transport`` and ``email_transport`` below for the two channels.
"""

from __future__ import annotations

import http.client
import json
import re
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from runner.crm.settings import CrmSettings
from runner.service.outbox import DeliveryError, Envelope, LogTransport, Transport

ZALO_PATHS = {"user": "/v3.0/oa/message/cs", "group": "/v3.0/oa/group/message"}
ZALO_RECIPIENT_KEYS = {"user": "user_id", "group": "group_id"}
TIMEOUT = 20.0


def _field(payload: dict[str, Any], name: str, channel: str) -> Any:
    """A required payload field; a message without it can never be sent (a final failure)."""
    value = payload.get(name)
    if value in (None, "", []):
        raise DeliveryError(f"{channel} message has no {name!r}", transient=False)
    return value


class ZaloTransport:
    """Sends ``{"to": "group"|"user", "recipient_id", "text"}`` payloads to the Zalo OA API."""

    idempotent = False  # no idempotency key in the API: see the module docstring

    def __init__(self, base_url: str, access_token: str, timeout: float = TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.timeout = timeout

    def send(self, envelope: Envelope) -> None:
        """One POST; raises DeliveryError as the module docstring's table says."""
        if not self.access_token:
            raise DeliveryError("no Zalo access token configured (RUNNER_ZALO_ACCESS_TOKEN)", transient=False)
        payload = envelope.payload
        to = payload.get("to", "group")
        if to not in ZALO_PATHS:
            raise DeliveryError(f"zalo message 'to' is {to!r}; use 'group' or 'user'", transient=False)
        body = {
            "recipient": {ZALO_RECIPIENT_KEYS[to]: str(_field(payload, "recipient_id", "zalo"))},
            "message": {"text": str(_field(payload, "text", "zalo"))},
        }
        url = self.base_url + ZALO_PATHS[to]
        request = urllib.request.Request(
            url,
            data=json.dumps(body, ensure_ascii=False).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "access_token": self.access_token,
            },
        )
        answer = _post(request, url, self.timeout)
        _check_answer(answer, url)


def _post(request: urllib.request.Request, url: str, timeout: float) -> bytes:
    """The response body of a POST, with the HTTP and network failures translated."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # the error carries the open response
        raise DeliveryError(f"HTTP {exc.code} from {url}", transient=exc.code >= 500) from exc
    except urllib.error.URLError as exc:
        # NOTE: urlopen wraps only failures to connect or to send the whole request in
        # URLError; the server cannot have acted on it, so trying again is safe.
        raise DeliveryError(f"cannot reach {url}: {exc.reason}", transient=True) from exc
    except (http.client.HTTPException, OSError) as exc:  # a timeout, a reset, a broken answer
        # The request went out and the answer never came (or broke off): it may have arrived.
        raise DeliveryError(
            f"no answer from {url} after sending: {type(exc).__name__}: {exc}", transient=False, uncertain=True
        ) from exc


def _check_answer(raw: bytes, url: str) -> None:
    """Zalo says HTTP 200 for its own errors too: the JSON ``error`` field decides."""
    try:
        answer = json.loads(raw or b"null")
    except ValueError as exc:
        raise DeliveryError(
            f"{url} answered 200 with a body that is not JSON; the message may have arrived",
            transient=False,
            uncertain=True,
        ) from exc
    if not isinstance(answer, dict) or "error" not in answer:
        raise DeliveryError(
            f"{url} answered 200 without an 'error' field; the message may have arrived",
            transient=False,
            uncertain=True,
        )
    if answer["error"] != 0:
        raise DeliveryError(f"Zalo error {answer['error']}: {answer.get('message', '')}".rstrip(": "), transient=False)


class SmtpTransport:
    """Sends ``{"to": [addresses], "subject", "body"}`` payloads as plain-text e-mail."""

    idempotent = False  # an SMTP server delivers every message it accepts: see the module docstring

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        sender: str,
        starttls: bool = False,
        timeout: float = TIMEOUT,
    ):
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.sender = sender
        self.starttls = starttls
        self.timeout = timeout

    def message(self, envelope: Envelope) -> EmailMessage:
        """The e-mail of an outbox message (its Message-ID carries the idempotency key)."""
        if not self.sender:
            raise DeliveryError("no sender address configured (RUNNER_SMTP_FROM)", transient=False)
        payload = envelope.payload
        to = _field(payload, "to", "email")
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(to) if isinstance(to, list) else str(to)
        msg["Subject"] = str(_field(payload, "subject", "email"))
        msg["Date"] = formatdate(localtime=False)
        # NOTE: a Message-ID made of the idempotency key lets a mailbox (and an admin) recognise a repeat.
        local = re.sub(r"[^A-Za-z0-9._-]", ".", envelope.idempotency_key)
        msg["Message-ID"] = f"<{local}@{self.sender.rpartition('@')[2] or 'localhost'}>"
        msg.set_content(str(_field(payload, "body", "email")))
        return msg

    def send(self, envelope: Envelope) -> None:
        """One SMTP conversation; raises DeliveryError as the module docstring's table says."""
        msg = self.message(envelope)
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except OSError as exc:
            raise DeliveryError(f"cannot reach SMTP server {self.host}:{self.port}: {exc}", transient=True) from exc
        try:
            self._prepare(smtp)
            self._transfer(smtp, msg)
        finally:
            _quit(smtp)

    @staticmethod
    def _transfer(smtp: smtplib.SMTP, msg: EmailMessage) -> None:
        """MAIL, RCPT and DATA: a refusal is final or transient by its code; silence is uncertain."""
        try:
            smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"SMTP server refused the recipients: {_refused(exc)}", transient=all(400 <= c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", transient=400 <= exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # The message may be inside the server already (the answer to DATA was lost).
            raise DeliveryError(
                f"SMTP conversation broke off while sending: {type(exc).__name__}: {exc}",
                transient=False,
                uncertain=True,
            ) from exc

    def _prepare(self, smtp: smtplib.SMTP) -> None:
        """EHLO, STARTTLS and login: nothing is sent yet, so failures are safe to retry."""
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls()
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP login as {self.user!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}", transient=False
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.smtp_code} before sending: {_text(exc.smtp_error)}", transient=exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP server {self.host}:{self.port} failed before sending: {exc}", transient=True
            ) from exc


def _quit(smtp: smtplib.SMTP) -> None:
    """End the conversation; the message's fate is already known, so QUIT's answer does not matter."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _text(raw: bytes | str) -> str:
    """An SMTP reply text as a str."""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _refused(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(f"{addr}: {code} {_text(text)}" for addr, (code, text) in exc.recipients.items())


def zalo_transport(settings: CrmSettings) -> Transport:
    """The ``zalo`` channel's transport as RUNNER_TRANSPORTS names it (``zalo_oa`` or ``log``)."""
    kind = settings.transport_for("zalo")
    if kind == "zalo_oa":
        return ZaloTransport(settings.zalo_base_url, settings.zalo_access_token)
    return _log_or_refuse("zalo", kind, "zalo_oa")


def email_transport(settings: CrmSettings) -> Transport:
    """The ``email`` channel's transport as RUNNER_TRANSPORTS names it (``smtp`` or ``log``)."""
    kind = settings.transport_for("email")
    if kind == "smtp":
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_user,
            settings.smtp_password,
            settings.smtp_from,
            settings.smtp_starttls,
        )
    return _log_or_refuse("email", kind, "smtp")


def _log_or_refuse(channel: str, kind: str, real: str) -> Transport:
    if kind != "log":
        raise DeliveryError(
            f"RUNNER_TRANSPORTS names transport {kind!r} for channel {channel!r}; use {real} or log", transient=False
        )
    return LogTransport()

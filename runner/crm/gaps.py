"""Staff members who would break a customer-facing step: what they lack, for which template and step.

``runner.crm.needs`` reads what each process's message steps print of the owner and the
teacher; here those needs meet the staff directory. The admin users page and the deploy
report list the gaps (``gaps``, ``deploy_review``), and the round-robin gives a customer only
to a rep who has everything the instance's process will print of its owner (``owner_needs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runner.crm.models import Staff
from runner.crm.needs import Need, process_needs
from runner.errors import Problem
from runner.store.models import Instance, ProcessVersion, User

PERSON_KEYS = ("username", "full_name", "roles", "active", "email", "phone", "zalo_user_id")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def lacks(person: Mapping[str, Any], needs: Iterable[Need]) -> list[Need]:
    """The needs a staff member (a dict of ``PERSON_KEYS``) cannot meet: the field is empty."""
    # NOTE: a field that is no staff field at all is a deployment problem (handlers.messages.check).
    return [n for n in needs if n.field in PERSON_KEYS and _blank(person.get(n.field))]


def people(session: Session) -> list[dict[str, Any]]:
    """Every active user with their contact facts (``PERSON_KEYS``), by username."""
    rows = session.execute(
        select(User, Staff.phone, Staff.zalo_user_id)
        .outerjoin(Staff, Staff.username == User.username)
        .where(User.active)
        .order_by(User.username)
    )
    return [
        {
            "username": user.username,
            "full_name": user.full_name,
            "roles": list(user.roles or []),
            "active": user.active,
            "email": user.email,
            "phone": phone,
            "zalo_user_id": zalo,
        }
        for user, phone, zalo in rows
    ]


def latest_processes(session: Session) -> list[tuple[str, str]]:
    """(process key, XML) of the newest version of every deployed BPMN process."""
    newest = (
        select(ProcessVersion.process_key, func.max(ProcessVersion.version).label("v"))
        .where(ProcessVersion.kind == "bpmn")
        .group_by(ProcessVersion.process_key)
        .subquery()
    )
    rows = session.execute(
        select(ProcessVersion.process_key, ProcessVersion.xml)
        .join(newest, (ProcessVersion.process_key == newest.c.process_key) & (ProcessVersion.version == newest.c.v))
        .order_by(ProcessVersion.process_key)
    )
    return [(key, xml) for key, xml in rows]


def _gaps_of(needs: Sequence[Need], staff: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for person in staff:
        for need in lacks(person, [n for n in needs if n.role in person["roles"]]):
            found.append(
                {
                    "username": person["username"],
                    "full_name": person["full_name"],
                    "field": need.field,
                    "need": need.label,
                    "template": need.template,
                    "process_key": need.process_key,
                    "element_id": need.element_id,
                    "element_name": need.element_name,
                }
            )
    return found


def gaps(session: Session, folder: Path) -> list[dict[str, Any]]:
    """Who lacks a field a deployed process's message step prints: name, field, template, step."""
    needs = [n for key, xml in latest_processes(session) for n in process_needs(xml, folder, key)]
    return _gaps_of(needs, people(session))


def deploy_review(
    session: Session, folder: Path, processes: Sequence[tuple[str, bytes, str]]
) -> dict[str, list[Problem]]:
    """For each process being deployed (key, XML, file): the staff who would break one of its steps."""
    staff = people(session)
    found: dict[str, list[Problem]] = {}
    for key, xml, file_name in processes:
        for gap in _gaps_of(process_needs(xml, folder, key), staff):
            reason = (
                f"{gap['full_name']} ({gap['username']}) has no {gap['field']}, which template "
                f"{gap['template']} prints as {gap['need']}"
            )
            found.setdefault(key, []).append(Problem(gap["element_id"], gap["element_name"], reason, file_name))
    return found


def owner_needs(session: Session, instance_id: str | None, folder: Path) -> list[Need]:
    """What the message steps of an instance's process version print of the customer's owner."""
    instance = session.get(Instance, instance_id) if instance_id else None
    if instance is None:
        return []
    version = session.get(ProcessVersion, instance.version_id)
    if version is None:
        return []
    return [n for n in process_needs(version.xml, folder, version.process_key) if n.record == "owner"]


def latest_owner_needs(session: Session, process_key: str, folder: Path) -> list[Need]:
    """What the message steps of a process's newest version print of the customer's owner (before it starts)."""
    version = session.scalars(
        select(ProcessVersion).where(ProcessVersion.process_key == process_key).order_by(ProcessVersion.version.desc())
    ).first()
    if version is None or version.kind != "bpmn":
        return []
    return [n for n in process_needs(version.xml, folder, process_key) if n.record == "owner"]

"""Staff rows: the CRM's facts about the runner's users, made when the CRM first needs them.

A person is a user of the runner's directory (``runner.service.accounts``); the CRM keeps
their phone, Zalo id and round-robin turn in ``staff``. A user added by the CLI or the
admin pages has no staff row until the CRM gives them a customer, a booking or weekly hours:
``staff_row`` makes it then, and ``ensure_staff`` makes every missing one before a query
that picks among all staff members (round-robin, free slots).
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runner.crm.models import Staff
from runner.store.models import User


def staff_row(session: Session, username: str | None) -> Staff | None:
    """The staff row of user ``username`` (made when the user has none yet), or None when there is no such user."""
    if not username:
        return None
    row = session.get(Staff, username)
    if row is None and session.get(User, username) is not None:
        row = Staff(username=username)
        session.add(row)
        session.flush()
    return row


def ensure_staff(session: Session) -> None:
    """Give every user who has no staff row one (a concurrent unit making the same row is no error)."""
    missing = select(User.username).where(~exists().where(Staff.username == User.username))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(Staff).from_select(["username"], missing).on_conflict_do_nothing())

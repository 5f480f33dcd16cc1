"""The configured lists of seed 003 that enum form fields may name (``options`` = ``list:NAME``).

Each is read as it is now through the caller's session (``runner.extension.OptionList``): a row
an admin adds or renames is on the next page and in the next check, with no redeploy. The value a
form stores is the row's text (the title or name), as the customer's columns and the diagrams'
messages (``'Lý do: ' + stop_reason``) hold it; the label is that text too, a child group's with
its parent in front.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm.models import CustomerGroup, CustomerSource, Occupation, School, StopCareReason
from runner.extension import OptionList

# NOTE: each list is a small configuration table read whole, in the order it was configured (id).


def stop_reasons(s: Session) -> list[tuple[str, str]]:
    """The reasons to stop care (lý do ngừng chăm sóc)."""
    return [(title, title) for title in s.scalars(select(StopCareReason.title).order_by(StopCareReason.id))]


def sources(s: Session) -> list[tuple[str, str]]:
    """The customer sources (nguồn khách hàng)."""
    return [(name, name) for name in s.scalars(select(CustomerSource.name).order_by(CustomerSource.id))]


def occupations(s: Session) -> list[tuple[str, str]]:
    """The occupations (nghề nghiệp)."""
    return [(name, name) for name in s.scalars(select(Occupation.name).order_by(Occupation.id))]


def schools(s: Session) -> list[tuple[str, str]]:
    """The schools (trường học)."""
    return [(name, name) for name in s.scalars(select(School.name).order_by(School.id))]


def customer_groups(s: Session) -> list[tuple[str, str]]:
    """The customer groups (nhóm); a child's label names its parent ("Trung tâm ngoại ngữ › Tiếng Anh")."""
    rows = s.execute(select(CustomerGroup.id, CustomerGroup.name, CustomerGroup.parent_id).order_by(CustomerGroup.id))
    groups = list(rows)
    names = {id: name for id, name, _ in groups}
    return [(name, f"{names[parent]} › {name}" if parent in names else name) for _, name, parent in groups]


LISTS: Mapping[str, OptionList] = {
    "stop_reasons": stop_reasons,
    "sources": sources,
    "occupations": occupations,
    "schools": schools,
    "customer_groups": customer_groups,
}

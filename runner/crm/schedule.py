"""The customer's own bookings as the booking.* steps look them up before booking or moving one.

Every function takes the caller's session and plain values and never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from runner.crm.models import Booking


def coming_starts(session: Session, customer_id: str, kind: str, now: datetime) -> list[datetime]:
    """Starts of the customer's booked appointments of ``kind`` that have not ended by ``now``."""
    return list(
        session.scalars(
            select(Booking.start_at).where(
                Booking.customer_id == customer_id,
                Booking.kind == kind,
                Booking.status == "booked",
                Booking.end_at > now,
            )
        )
    )


def current_appointment(session: Session, customer_id: str, kind: str, now: datetime) -> Booking | None:
    """The customer's first booked appointment of ``kind`` not ended by ``now``, locked; or None."""
    return session.scalars(
        select(Booking)
        .where(
            Booking.customer_id == customer_id,
            Booking.kind == kind,
            Booking.status == "booked",
            Booking.end_at > now,
        )
        .order_by(Booking.start_at)
        .with_for_update()
    ).first()


def sibling_starts(session: Session, booking: Booking) -> list[datetime]:
    """Starts of the customer's other booked appointments of the same kind as ``booking``, past ones too."""
    return list(
        session.scalars(
            select(Booking.start_at).where(
                Booking.customer_id == booking.customer_id,
                Booking.kind == booking.kind,
                Booking.status == "booked",
                Booking.id != booking.id,
            )
        )
    )

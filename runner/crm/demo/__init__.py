"""The demo company: staff with logins, teachers' hours, and about 40 customers in every stage.

``run(runner)`` loads it into an empty database on the virtual clock: the configured lists,
13 staff members (one login each), the teachers' and customer care's weekly hours, then
40 customers whose leads came in over the last four months, the sales reps' last daily
check-ins and two feature requests. Every customer is moved by
the processes themselves (``runner.crm.demo.journeys``): instances started, tasks completed by
the right staff member, timers fired by moving the clock, never rows written by hand.
The clock therefore ends about four months after where it stood. Running it again on a
database that has customers changes nothing and only prints the summary.

Passwords: ``DEMO_PASSWORD`` for the staff and ``DEMO_ADMIN_PASSWORD`` for ``admin``, read from
the environment the settings were read from (``runner.settings.environ``). When
either is unset, the demo makes a random one the first time and keeps it in the instance
folder (``demo_passwords.json``, readable by its owner only), so no installation signs in
with a password that is written in the code; the summary prints the logins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets as _random
from collections.abc import Iterator, Mapping
from datetime import datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from runner.clock import FixedClock
from runner.crm import customers as crm
from runner.crm import settings as crm_settings
from runner.crm.demo.company import AVAILABILITY, BUSINESS_HOURS, CUSTOMERS, HOLIDAY_COUNTRY, PLANS, STAFF, Plan
from runner.crm.demo.journeys import checkin_story, feature_request_story, sales_story
from runner.crm.demo.story import Journey, Lead, Story
from runner.crm.models import Customer
from runner.errors import Invalid, NotFound
from runner.queries import tasklists as inbox
from runner.service import accounts as users
from runner.store.models import ProcessVersion, User

if TYPE_CHECKING:
    from runner.service.runtime import Runner

PROCESSES = ("sales", "onboarding", "care_month", "renewal", "checkin", "feature_request")
PASSWORD_FILE = "demo_passwords.json"
END_WEEKDAY, END_TIME = 3, time(16, 30)  # the demo's "now": a Thursday afternoon
PHONE_PREFIXES = (
    "090",
    "091",
    "093",
    "094",
    "096",
    "097",
    "098",
    "032",
    "033",
    "035",
    "037",
    "038",
    "039",
    "070",
    "076",
    "077",
    "079",
    "081",
    "083",
    "084",
    "085",
    "086",
    "088",
    "089",
)


def passwords(env: Mapping[str, str], folder: Path) -> dict[str, str]:
    """The demo logins' passwords: username -> password.

    DEMO_PASSWORD (staff) and DEMO_ADMIN_PASSWORD (admin) when set; otherwise random ones made
    once and kept in ``folder`` (the instance folder).
    """
    kept = _kept_passwords(folder)
    staff = env.get("DEMO_PASSWORD") or kept["staff"]
    admin = env.get("DEMO_ADMIN_PASSWORD") or kept["admin"]
    return {username: admin if "admin" in roles else staff for username, _, roles, _ in STAFF}


def _kept_passwords(folder: Path) -> dict[str, str]:
    """The instance's random demo passwords, made on first use (owner-only file)."""
    path = folder / PASSWORD_FILE
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # NOTE: O_EXCL: two demo loads cannot write different passwords; an existing file is kept.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return json.loads(path.read_text(encoding="utf-8"))
    made = {"staff": _random.token_urlsafe(9), "admin": _random.token_urlsafe(12)}
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(made, out)
    return made


def run(runner: Runner, env: Mapping[str, str] | None = None) -> None:
    """Load the demo company (once) and print what it looks like; ``env`` defaults to the settings' one."""
    env = runner.settings.environ if env is None else env
    with runner.db.read() as s:
        loaded = s.scalar(select(func.count()).select_from(Customer))
    if loaded:
        print(f"The database already has {loaded} customers: the demo company is not loaded again.")
    else:
        _check(runner)
        add_staff(runner, passwords(env, Path(runner.settings.instance_path)))
        story = Story(runner, end_moment(runner.now(), runner.settings.tz), _roles(runner))
        for lead in leads(story):
            story.spawn(lead.id, _begin(story, lead), _arrival(story, lead.plan))
        story.spawn("checkin", checkin_story(story), story.at(10, "08:00"))
        story.spawn("feature_request", feature_request_story(story), story.at(10, "08:00"))
        with _quiet("runner.service.outbox"):
            story.run()
            runner.deliver_outbox()
    summary(runner, env)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Hold back a logger's INFO lines for a while.

    NOTE: the log transport writes every message it "sends" at INFO; the demo sends a few
    hundred, which would bury the summary.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check(runner: Runner) -> None:
    """The demo needs the virtual clock, the six processes, and no real Zalo or e-mail sending."""
    if not isinstance(runner.clock, FixedClock):
        raise Invalid("the demo moves the clock: set RUNNER_CLOCK=virtual")
    real = [c for c in ("zalo", "email") if crm_settings.of(runner).transport_for(c) != "log"]
    if real:
        raise Invalid(
            f"RUNNER_TRANSPORTS sends {', '.join(real)} for real: the demo's invented customers "
            "would get messages; load the demo without RUNNER_TRANSPORTS"
        )
    with runner.db.read() as s:
        deployed = set(s.scalars(select(ProcessVersion.process_key)))
    missing = [key for key in PROCESSES if key not in deployed]
    if missing:
        raise NotFound(f"the demo needs the processes {', '.join(missing)}: run `runner deploy processes` first")


def end_moment(now: datetime, tz: tzinfo) -> datetime:
    """The demo's "now": the first Thursday 16:30 that leaves room for the oldest lead's story."""
    span = max(plan.ago for plan in PLANS) + 4
    day = (now.astimezone(tz) + timedelta(days=span)).date()
    while day.weekday() != END_WEEKDAY:
        day += timedelta(days=1)
    return datetime.combine(day, END_TIME, tz)


def add_staff(runner: Runner, secrets: Mapping[str, str]) -> None:
    """The configured lists, the staff (a login each; existing ones are kept) and their weekly hours."""
    with runner.db.unit() as s:
        crm.seed_lists(s)
    for username, full_name, roles, _phone in STAFF:
        if users.get_user(runner, username) is None:
            users.create_user(
                runner, username, full_name, roles, password=secrets[username], email=f"{username}@easyedu.vn"
            )
    with runner.db.unit() as s:
        for username, _, _, phone in STAFF:
            row = crm.staff_row(s, username)
            if row is None:
                raise NotFound(f"demo staff member {username} has no user")
            row.phone = row.phone or phone.replace(" ", "")
        for username, windows in AVAILABILITY.items():
            crm.set_availability(s, username, windows)
    if runner.business_calendar()["version"] == 0:  # NOTE: an admin's own calendar is kept
        runner.save_business_calendar(BUSINESS_HOURS, HOLIDAY_COUNTRY, actor="demo")


def _roles(runner: Runner) -> dict[str, list[str]]:
    with runner.db.read() as s:
        return {row.username: list(row.roles) for row in s.scalars(select(User).where(User.active))}


def leads(story: Story) -> list[Lead]:
    """The 40 customers, numbered in the order their leads came in."""
    plans = sorted(PLANS, key=lambda p: _arrival(story, p))
    rng = random.Random(2026)  # NOTE: seeded, so every demo has the same phones and Zalo ids
    found = []
    for index, (plan, row) in enumerate(zip(plans, CUSTOMERS, strict=True), start=1):
        name, slug, source, group, occupation, model, department, staff, students, course, contact = row
        phone = rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        found.append(
            Lead(
                id=f"KH{index:04d}",
                index=index,
                name=name,
                slug=slug,
                contact=contact,
                plan=plan,
                fields={
                    "phone": phone,
                    "email": f"lienhe@{slug}.edu.vn",
                    "source": source,
                    "group": group,
                    "occupation": occupation,
                    "website": f"https://{slug}.edu.vn",
                    "branch_count": 1 + students // 400,
                },
                facts={
                    "business_model": model,
                    "dedicated_department": department,
                    "staff_count": staff,
                    "student_count": students,
                    "course_model": course,
                },
                zalo_user_id=str(rng.randrange(10**18, 10**19)),
                zalo_group_id=str(rng.randrange(10**18, 10**19)),
                care=("hoa", "ngoc")[index % 2],
            )
        )
    return found


def _arrival(story: Story, plan: Plan) -> datetime:
    """When a plan's lead comes in: its day and hour, a weekend moved back to the Friday."""
    moment = story.at(plan.ago, plan.at)
    while moment.weekday() >= 5:
        moment -= timedelta(days=1)
    return moment


def _begin(story: Story, lead: Lead) -> Journey:
    """Marketing records the lead when it comes in, then its sales story runs."""
    with story.runner.db.unit() as s:
        crm.add_customer(s, lead.id, lead.name, now=story.now(), tz=story.runner.settings.tz, **lead.fields)
    yield from sales_story(story, lead)


def summary(runner: Runner, env: Mapping[str, str] | None = None) -> None:
    """Print customers per stage of both pipelines and the demo logins; ``env`` as for ``run``."""
    env = runner.settings.environ if env is None else env
    with runner.db.read() as s:
        boards = {pipeline: crm.board(s, pipeline) for pipeline in crm.STAGES}
    local = runner.now().astimezone(runner.settings.tz)
    print(f"\n== Demo company at {local:%d/%m/%Y %H:%M} (virtual clock) ==")
    for pipeline, board in boards.items():
        print(f"{pipeline}:")
        for stage, customers in board.items():
            print(f"  {stage:<18} {len(customers):>2}  {' '.join(c['id'] for c in customers)}")
    print(f"Open tasks: {len(inbox.tasks(runner))}")
    print("\nLogins (username / password, role):")
    secrets = passwords(env, Path(runner.settings.instance_path))
    for user in users.list_users(runner):
        if user["username"] in secrets:
            print(
                f"  {user['username']:<7} {secrets[user['username']]:<16} {', '.join(user['roles']):<14} "
                f"{user['full_name']}"
            )
    print("Try: runner tasks --group customer_care | runner clock advance 1d | runner history --customer KH0040\n")

"""The demo's driver: customers' stories woken in time order on the virtual clock.

Each customer's story (``runner.crm.demo.journeys``) is a generator: it does one step as the
staff member whose inbox holds the task (through ``Runner.complete_task_as``, as the web
app does), then yields the moment of its next step. ``Story.run`` wakes the stories in
time order and moves the virtual clock between them, so every timer, job and message of
every customer fires in order on the way. Stories stop at the demo's "now" or at the step
their plan leaves open.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from runner.crm.demo.company import Plan
from runner.errors import NotFound, RunnerError
from runner.model import worktime
from runner.model.worktime import BusinessCalendar
from runner.queries import tasklists as inbox

if TYPE_CHECKING:
    from runner.service.runtime import Runner

Journey = Generator[datetime, None, Any]
# who does group tasks nobody is assigned to (customer care alternates per customer)
DESK = {"team_leader": "tuan", "accountant": "ha", "marketing": "thuy"}


class Stop(RunnerError):
    """Raised in a story when it reaches the step its plan leaves open for the staff (caught by ``run``)."""


@dataclass(frozen=True)
class Lead:
    """A customer of the demo: its record, its contact and its plan."""

    id: str
    index: int
    name: str
    fields: Mapping[str, Any]  # the record marketing hands over (phone, e-mail, source...)
    facts: Mapping[str, Any]  # the five profile facts the sales call finds out
    contact: str  # e.g. "chị Lan"
    slug: str
    zalo_user_id: str
    zalo_group_id: str
    care: str  # the customer-care staff member who looks after it
    plan: Plan


class Story:
    """Wakes the customers' stories in time order on the runner's virtual clock until ``end``."""

    def __init__(self, runner: Runner, end: datetime, roles: Mapping[str, list[str]]):
        self.runner, self.end, self.roles = runner, end, roles
        self.tz = runner.settings.tz
        self._queue: list[tuple[datetime, int, str, Journey]] = []
        self._seq = 0

    # --- time -------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The runner's (virtual) clock."""
        return self.runner.now()

    def at(self, days_ago: int, hhmm: str) -> datetime:
        """``hhmm`` (business time) ``days_ago`` days before the end (negative: after it)."""
        day = self.end.astimezone(self.tz).date() - timedelta(days=days_ago)
        return datetime.combine(day, time.fromisoformat(hhmm), self.tz)

    def workday(self, moment: datetime, hhmm: str, days: int = 1) -> datetime:
        """``hhmm`` on the ``days``-th weekday (Monday to Friday, not a holiday) after ``moment``'s day.

        NOTE: holidays count, so an appointment (a demo, which must lie in working time) never
        lands on Giỗ Tổ Hùng Vương or Tết whatever day the story starts on.
        """
        cal, day = self.calendar(), moment.astimezone(self.tz).date()
        while days > 0:
            day += timedelta(days=1)
            days -= day.weekday() < 5 and not cal.is_holiday(day)
        return datetime.combine(day, time.fromisoformat(hhmm), self.tz)

    def calendar(self) -> BusinessCalendar:
        """The runner's stored business calendar."""
        cal = self.runner.business_calendar()
        days_off = [date.fromisoformat(d["day"]) for d in cal["days_off"]]
        return BusinessCalendar.from_text(self.tz, cal["hours"], cal["country"], days_off)

    def working_days_after(self, moment: datetime, days: int) -> datetime:
        """``days`` working days after ``moment`` as the runner's business-time timers count them."""
        return worktime.add_working_days(self.calendar(), moment, days)

    def office(self, moment: datetime) -> datetime:
        """``moment`` if it falls in office hours (Mon-Fri 08:00-17:30), else the next working morning."""
        local = moment.astimezone(self.tz)
        if local.weekday() < 5 and time(8) <= local.time() <= time(17, 30):
            return moment
        if local.weekday() < 5 and local.time() < time(8):
            return datetime.combine(local.date(), time(8, 30), self.tz)
        return self.workday(local, "08:30")

    # --- the loop ---------------------------------------------------------------------------

    def spawn(self, key: str, journey: Journey, at: datetime) -> None:
        """Let a story begin at ``at`` (its code up to the first ``yield`` runs then)."""
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, key, journey))

    def run(self) -> None:
        """Run every story step whose moment comes before the end; then move the clock to the end."""
        while self._queue and self._queue[0][0] <= self.end:
            at, _, key, journey = heapq.heappop(self._queue)
            if at > self.now():
                self.runner.advance_clock(at - self.now())
            try:
                wake = next(journey)
            except (StopIteration, Stop):
                continue
            except RunnerError as exc:
                raise RunnerError(f"demo customer {key}: {exc}") from exc
            self.spawn(key, journey, max(wake, self.now()))
        if self.end > self.now():
            self.runner.advance_clock(self.end - self.now())

    # --- steps --------------------------------------------------------------------------------

    def settle(self) -> None:
        """Run the jobs and timers due now (``run_due`` works them off until none is left)."""
        self.runner.run_due()

    def open_elements(self, lead: Lead) -> set[str]:
        """The element ids of the customer's open tasks."""
        return {t["element_id"] for t in inbox.tasks(self.runner, business_key=lead.id)}

    def task(self, lead: Lead, element: str) -> dict[str, Any]:
        """The customer's one open task of ``element``; RunnerError names what is open instead."""
        found = [t for t in inbox.tasks(self.runner, business_key=lead.id) if t["element_id"] == element]
        if len(found) != 1:
            raise RunnerError(
                f"expected one open task {element}, found {len(found)}; open: {sorted(self.open_elements(lead))}"
            )
        return found[0]

    def data(self, lead: Lead, process_key: str) -> dict[str, Any]:
        """The data of the customer's newest instance of a process."""
        return inbox.instances(self.runner, business_key=lead.id, process_key=process_key)[0]["data"]

    def result(self, lead: Lead, element: str) -> dict[str, Any] | None:
        """The result of the customer's last run of a service task (as its history shows it), or None."""
        found = [
            h["details"]["result"]
            for h in inbox.history(self.runner, business_key=lead.id, events=["handler.succeeded"])
            if h["element_id"] == element
        ]
        return found[-1] if found else None

    def outcome(self, lead: Lead, element: str) -> dict[str, Any]:
        """The result of a service task the story has run for the customer."""
        found = self.result(lead, element)
        if found is None:
            raise NotFound(f"{lead.id}: service task {element} has not run")
        return found

    def work(self, lead: Lead, element: str, data: Mapping[str, Any]) -> None:
        """Complete the customer's open ``element`` task as the staff member whose inbox holds it.

        A task offered to a group is first claimed, as in the inbox. ``Stop`` when the plan
        leaves this step open.
        """
        if element == lead.plan.stop:
            raise Stop(element)
        task = self.task(lead, element)
        user = task["assignee"] or self._desk(lead, task["candidate_groups"])
        if not task["assignee"]:
            self.runner.claim_task(task["id"], user, self.roles[user])
        self.runner.complete_task_as(task["id"], dict(data), user, self.roles[user])
        self.settle()

    def _desk(self, lead: Lead, groups: list[str]) -> str:
        for group in groups:
            if group == "customer_care":
                return lead.care
            if group in DESK:
                return DESK[group]
            for user, roles in self.roles.items():
                if group in roles:
                    return user
        raise RunnerError(f"nobody of the demo company works in {groups}")

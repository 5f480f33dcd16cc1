"""A short demo on the virtual clock: a few customers moving through periodic care."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from runner import inbox

if TYPE_CHECKING:
    from runner.runtime import Runner

CUSTOMERS = {
    "KH001": "Trung tâm Anh ngữ Ánh Dương",
    "KH002": "Trường Tiểu học Hoa Sen",
    "KH003": "Học viện Lập trình Sao Mai",
}
ANSWERS = {
    "KH001": {"reached": True, "usage": "good", "feedback": "good", "note": "Khách hài lòng, dùng đều"},
    "KH002": {"reached": True, "usage": "low", "feedback": "good", "note": "Ít đăng nhập tháng này"},
    "KH003": {"reached": True, "usage": "good", "feedback": "bad", "note": "Phản hồi về tốc độ"},
}


def run(runner: "Runner") -> None:
    """Start periodic care for three customers, work their tasks, move a month on, print it."""
    for key, name in CUSTOMERS.items():
        if inbox.instances(runner, business_key=key, process_key="periodic_care"):
            continue
        runner.start_instance("periodic_care", key, {"customer_name": name, "note": ""}, actor="demo")
        for task in inbox.tasks(runner, business_key=key):
            runner.complete_task(task["id"], ANSWERS[key], actor="cskh.lan")
    runner.run_due()
    runner.deliver_outbox()
    for task in inbox.tasks(runner, business_key="KH002"):
        if task["element_id"] == "Task_problem":
            runner.complete_task(task["id"], {"resolution": "Hẹn buổi hướng dẫn lại", "stop_care": False},
                                 actor="cskh.lan")
    runner.advance_clock(timedelta(days=31))
    _print(runner)


def _print(runner: "Runner") -> None:
    print(f"\n== Demo at {runner.now():%Y-%m-%d %H:%M} (virtual clock) ==")
    for row in inbox.instances(runner, process_key="periodic_care"):
        print(f"{row['business_key']}: {row['status']:<9} stage={', '.join(row['stages']) or '-'}")
    print("\nOpen tasks (group customer_care):")
    for task in inbox.tasks(runner, groups=["customer_care"]):
        due = task["due_at"].strftime("%Y-%m-%d %H:%M") if task["due_at"] else "-"
        print(f"  {task['business_key']}  {task['name']:<30} due {due}  id={task['id']}")
    print(f"\nHistory events so far: {len(inbox.history(runner))}; outbox sent: "
          f"{len(inbox.outbox(runner, state='sent'))}")
    print("Try: runner tasks --group customer_care | runner clock advance 31d | runner history --customer KH001\n")

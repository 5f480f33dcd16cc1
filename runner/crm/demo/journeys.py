"""The demo customers' stories, step by step as the seeds describe them.

Sales (seed 001): lead, verification, calls and call-backs, survey and demo account, demo,
closing pushes every 3 days, the promotion at day 7, contract and payment. Post-sale (seed
000): booking, 2-3 training sessions, handover, monthly care, problems, renewal. Seed 001's
routines: the reps' last daily check-ins and two feature requests. Each
function is a generator for ``runner.crm.demo.story.Story``: it yields when its next step is
due; what each customer decides comes from its ``Plan``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from runner.crm import routines
from runner.crm.demo.company import PRICES
from runner.crm.demo.story import DESK, Journey, Lead, Story
from runner.model.timeparse import add_months
from runner.queries import tasklists as inbox

PROMOTION = "Tặng thêm 1 tháng sử dụng khi ký hợp đồng 12 tháng trong tuần này."


def sales_story(s: Story, c: Lead) -> Journey:
    """From the lead marketing hands over to the deal (seed 001), then the post-sale story."""
    p = c.plan
    s.runner.start_instance("sales", c.id, actor=DESK["marketing"])
    s.settle()
    yield s.now() + timedelta(minutes=20)
    s.work(c, "Task_verify", {"verdict": "good"})
    yield s.now() + timedelta(hours=1)
    element = "Task_call"
    for attempt in range(p.attempts):
        s.work(c, element, {"call_result": "not_reached"})
        if attempt == 2:  # the third unanswered call: the team leader decides
            s.work(c, "Task_tl_review", {"tl_decision": "retry"})
        yield datetime.fromisoformat(s.data(c, "sales")["callback_at"]) + timedelta(minutes=25)
        element = "Task_recall"
    s.work(c, element, {"call_result": "reached"})
    yield s.now() + timedelta(minutes=15)
    demo_at = s.at(*p.demo_at) if p.demo_at else s.workday(s.now(), ("14:30", "10:00")[c.index % 2], days=2)
    s.work(
        c,
        "Task_survey",
        {
            **c.facts,
            "zalo_user_id": c.zalo_user_id,
            "demo_at": _local(s, demo_at),
            "trial_link": f"https://trial.easyedu.vn/{c.slug}",
            "call_note": f"Đã gọi {c.contact}: {c.facts['business_model']}. "
            "Quan tâm quản lý học phí, điểm danh và báo cáo.",
        },
    )
    yield demo_at - timedelta(minutes=45)
    s.work(c, "Task_confirm", {"demo_status": "confirmed"})
    yield demo_at + timedelta(minutes=50)
    s.work(
        c,
        "Task_demo",
        {
            "promising": p.promising,
            "negotiation_at": _local(s, s.workday(demo_at, "10:00")),
            "sample_contract": not p.promising,
            "demo_note": f"Demo 45 phút cho {c.contact}: tuyển sinh, xếp lớp, học phí, báo cáo."
            + (" Khách rất quan tâm." if p.promising else " Khách còn so sánh giá."),
        },
    )
    yield from negotiation_story(s, c)


def negotiation_story(s: Story, c: Lead) -> Journey:
    """Closing pushes every 3 days; the promotion at day 7 when the demo did not convince; the deal."""
    p, window = c.plan, s.now()
    element = "Task_w_hot" if p.promising else "Task_w_warm"
    for push in range(p.pushes):
        # NOTE: pushes come every 3 working days (a business-time timer), so the story waits for them.
        yield s.office(
            s.workday(s.now(), "10:00") if push == 0 else s.working_days_after(s.now(), 3) + timedelta(minutes=30)
        )
        s.work(
            c,
            element,
            {
                "negotiation_result": "continue",
                "negotiation_note": ("Gửi báo giá và hợp đồng mẫu.", "Khách hẹn họp với ban giám đốc.")[push % 2],
            },
        )
    if not p.promising:
        yield s.office(window + timedelta(days=7, hours=1))
        s.work(c, "Task_promo_approve", {"promotion_approved": True, "promotion": PROMOTION})
        yield s.workday(s.now(), "10:00")
        element = "Task_care"
    else:
        yield (
            s.office(s.working_days_after(s.now(), 3) + timedelta(minutes=30))
            if p.pushes
            else s.workday(s.now(), "10:00")
        )
    s.work(c, element, {"negotiation_result": "won", "negotiation_note": "Khách đồng ý ký hợp đồng."})
    package = _package(c)
    yield s.now() + timedelta(hours=1)
    s.work(
        c,
        "Task_contract",
        {
            "package": package,
            "amount": PRICES[package, p.months],
            "contract_months": p.months,
            "promotion_terms": "Không" if p.promising else PROMOTION,
        },
    )
    yield _when(s, c, "Task_payment", s.workday(s.now(), "10:30"))
    s.work(c, "Task_payment", {"paid": True})
    s.spawn(c.id, upsell_story(s, c), s.office(s.now() + timedelta(days=30, hours=1)))
    yield from post_sale_story(s, c)


def upsell_story(s: Story, c: Lead) -> Journey:
    """The call 30 days after the deal about deployment and upsell."""
    interested = c.index % 3 == 0
    s.work(
        c,
        "Task_upsell",
        {
            "upsell_interest": interested,
            "upsell_note": "Muốn mở thêm 1 cơ sở, gửi báo giá."
            if interested
            else "Đang dùng ổn, chưa có nhu cầu thêm.",
        },
    )
    yield from ()


def post_sale_story(s: Story, c: Lead) -> Journey:
    """Receipt, booking and training (2-3 sessions), handover (seed 000), then care."""
    p = c.plan
    yield s.now() + timedelta(minutes=15)
    slots = s.outcome(c, "Task_find_slots")["proposed_slots"]  # what Mẫu 1 proposed to the customer
    s.work(
        c,
        "Task_booking_call",
        {
            "slot_1": slots[0],
            "slot_2": slots[1],
            "booking_call_note": f"{c.contact.capitalize()} đồng ý 2 buổi đào tạo đề xuất.",
        },
    )
    s.work(c, "Task_zalo_group", {"zalo_group_id": c.zalo_group_id})
    done = 0
    while done < len(sessions := _sessions(s, c)):
        start = datetime.fromisoformat(sessions[done])
        score = p.scores[done] if done < len(p.scores) else 9
        yield max(s.now(), start - timedelta(days=1)) + timedelta(minutes=30)
        s.work(
            c,
            "Task_confirm",
            {"confirmation": "confirmed", "confirm_note": "Khách xác nhận, phòng máy có máy chiếu và mạng ổn định."},
        )
        yield start + timedelta(minutes=95)
        s.work(c, "Task_teacher_note", {"content": TRAINING[min(done, 2)], "understanding": score})
        yield start + timedelta(hours=3)
        s.work(
            c,
            "Task_after_training_call",
            {
                "attended": True,
                "customer_understanding": score,
                "teacher_rating": 5 if score >= 8 else 4,
                "teacher_feedback": "Giáo viên nhiệt tình, giảng dễ hiểu."
                if score >= 8
                else "Giáo viên nhiệt tình, khách cần thêm thời gian thực hành.",
            },
        )
        done += 1
    yield s.workday(s.now(), "09:00")
    s.work(
        c, "Task_handover", {"handover_note": f"{c.contact.capitalize()} đã tự xếp lớp và thu học phí trên phần mềm."}
    )
    yield from care_story(s, c)


def _sessions(s: Story, c: Lead) -> list[str]:
    """The starts of the customer's training sessions: the two booked, and a third if one was."""
    third = s.result(c, "Task_book_third")
    return s.outcome(c, "Task_book")["session_starts"] + (third["session_starts"] if third else [])


TRAINING = (
    "Cài đặt trung tâm, tuyển sinh, xếp lớp",
    "Điểm danh, học phí, công nợ",
    "Báo cáo, ứng dụng phụ huynh, ôn tập",
)


def care_story(s: Story, c: Lead) -> Journey:
    """Monthly care calls; a problem customer; renewal care in the last 3 months of the contract."""
    month = 0
    while True:
        data = s.data(c, "onboarding")
        due = datetime.fromisoformat(data["care_due_at"])
        renewal_at = datetime.combine(add_months(date.fromisoformat(data["contract_end"][:10]), -3), time(), s.tz)
        yield s.workday(renewal_at - timedelta(days=1), "09:30") if renewal_at <= due else due + timedelta(minutes=5)
        if "Task_renewal_call" in s.open_elements(c):
            if not (yield from renewal_story(s, c)):
                return
            continue
        call_at = s.task(c, "Task_care_call")["due_at"] - timedelta(minutes=30)
        yield call_at + timedelta(minutes=10)
        if "Task_care_call" not in s.open_elements(c):
            continue  # renewal care took over before the call
        month += 1
        outcome = c.plan.care[month - 1] if month <= len(c.plan.care) else "ok"
        s.work(
            c,
            "Task_care_call",
            {
                "reached": True,
                "usage": "low" if outcome == "low" else "good",
                "feedback": "bad" if outcome == "bad" else "good",
                "care_note": {
                    "ok": "Trung tâm dùng đều điểm danh và học phí, không vướng mắc.",
                    "low": "Ít đăng nhập, giáo viên vẫn điểm danh trên giấy.",
                    "bad": "Khách phàn nàn báo cáo công nợ chậm.",
                }[outcome],
            },
        )
        if outcome != "ok":
            yield s.workday(s.now(), "10:00")
            if not (yield from problem_story(s, c, outcome)):
                return


def problem_story(s: Story, c: Lead, outcome: str) -> Journey:
    """CÓ VẤN ĐỀ: solved (back to care), or stopped with a reason (and maybe locked). Returns solved."""
    solved = c.plan.problem == "resolved"
    s.work(
        c,
        "Task_problem",
        {
            "problem_kind": "low_usage" if outcome == "low" else "bad_feedback",
            "problem_action": "Hướng dẫn lại qua TeamViewer, gửi video hướng dẫn."
            if solved
            else "Gọi 3 lần và nhắn Zalo, khách không muốn tiếp tục.",
            "problem_outcome": "resolved" if solved else "stop",
        },
    )
    if solved:
        return True
    yield s.office(s.now() + timedelta(hours=2))
    s.work(
        c,
        "Task_stop_reason",
        {
            "stop_reason": "Không còn nhu cầu" if outcome == "low" else "Phản hồi xấu về sản phẩm",
            "stop_note": "Trung tâm thu hẹp hoạt động.",
            "lock_now": c.plan.problem == "lock",
        },
    )
    return False


def renewal_story(s: Story, c: Lead) -> Journey:
    """CHĂM SÓC TÁI KÝ: renewed (and paid), still considering, or declined. Returns renewed."""
    decision, package = c.plan.renewal, _package(c)
    s.work(
        c,
        "Task_renewal_call",
        {
            "renewal_decision": decision,
            "renewal_package": package,
            "renewal_months": 12,
            "renewal_amount": PRICES[package, 12],
            "renewal_note": {
                "renew": "Khách gia hạn 12 tháng.",
                "considering": "Khách cần hỏi ý kiến đối tác, gọi lại sau.",
                "decline": "Trung tâm chuyển sang dùng phần mềm miễn phí.",
            }[decision],
        },
    )
    if decision == "considering":
        return False
    yield s.workday(s.now(), "10:00")
    if decision == "renew":
        s.work(c, "Task_confirm_payment", {"payment_ref": f"FT{c.id[2:]}{s.now():%m%d}"})
        return True
    s.work(
        c,
        "Task_no_renew_reason",
        {"stop_reason": "Không tái ký hợp đồng", "stop_note": "Chuyển sang phần mềm miễn phí."},
    )
    return False


def _package(c: Lead) -> str:
    if c.plan.months != 12:
        return "Chuyên nghiệp"
    students = c.facts["student_count"]
    return "Doanh nghiệp" if students >= 700 else "Chuyên nghiệp" if students >= 250 else "Cơ bản"


def _when(s: Story, c: Lead, element: str, natural: datetime) -> datetime:
    """When a step happens: its natural moment, or later if the plan says so."""
    return max(natural, s.at(*c.plan.when[element])) if element in c.plan.when else natural


def _local(s: Story, moment: datetime) -> str:
    """A moment as a form's date-time field holds it (business time, no offset)."""
    return moment.astimezone(s.tz).strftime("%Y-%m-%dT%H:%M:%S")


# --- seed 001's routines: the daily check-in and feature requests ----------------------------------

CHECKIN_ANSWERS = (
    {
        "yesterday": "Gọi lại 8 lead, demo 1 trung tâm",
        "today": "Đàm phán hợp đồng, gửi hợp đồng mẫu",
        "blockers": "",
        "ideas": "",
    },
    {
        "yesterday": "Chăm sóc khách đang dùng thử",
        "today": "Demo 2 trung tâm buổi chiều",
        "blockers": "Khách hỏi giá gói 24 tháng, cần trưởng phòng duyệt khuyến mãi",
        "ideas": "",
    },
    {
        "yesterday": "Thẩm định 5 lead mới",
        "today": "Gọi các lead Liên hệ lại",
        "blockers": "",
        "ideas": "Gửi video hướng dẫn ngắn qua Zalo trước buổi demo",
    },
)


def checkin_story(s: Story) -> Journey:
    """The reps answer the check-ins of the demo's last four working days; one day a rep forgets."""
    for days_ago in (3, 2, 1, 0):
        yield s.at(days_ago, "08:50")
        for n, task in enumerate(inbox.tasks(s.runner, process_key=routines.CHECKIN)):
            if days_ago == 1 and n == 0:
                continue  # left open, then shown as "không check-in" once the day closes
            user = task["assignee"]
            s.runner.complete_task_as(task["id"], CHECKIN_ANSWERS[n % 3], user, s.roles[user])
        s.settle()


def feature_request_story(s: Story) -> Journey:
    """A rep asks for a feature for a customer and the product team takes it on; a teacher's request waits."""
    yield s.at(9, "10:00")
    routines.file_feature_request(
        s.runner,
        "hung",
        "Điểm danh học sinh bằng mã QR",
        "Trung tâm muốn học sinh quét mã QR khi vào lớp, phụ huynh nhận thông báo qua Zalo.",
        "KH0001",
    )
    s.settle()
    yield s.at(8, "09:30")
    _product_work(s, "Task_triage", {"decision": "accept", "product_reply": "Đưa vào kế hoạch quý tới."})
    yield s.at(6, "14:00")
    _product_work(s, "Task_start_work", {"product_reply": "Đang làm, dự kiến có bản thử trong 3 tuần."})
    yield s.at(2, "11:00")
    routines.file_feature_request(
        s.runner, "minh", "Xem lịch dạy trên điện thoại", "Giáo viên cần xem lịch dạy trong tuần trên điện thoại."
    )
    s.settle()


def _product_work(s: Story, element: str, data: dict[str, Any]) -> None:
    """The product team member claims and completes the open feature-request task ``element``."""
    [task] = [t for t in inbox.tasks(s.runner, process_key=routines.FEATURE_REQUEST) if t["element_id"] == element]
    s.runner.claim_task(task["id"], "tu", s.roles["tu"])
    s.runner.complete_task_as(task["id"], data, "tu", s.roles["tu"])
    s.settle()

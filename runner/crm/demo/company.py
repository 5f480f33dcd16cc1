"""The demo company: its staff, their weekly hours, its customers and where each one's story stops.

Plain data for ``runner.crm.demo``. A customer's ``Plan`` says when its lead came in (days before
the demo's "now") and how its people decide at each step; the processes and the virtual
clock do the rest, so the stage a customer ends up in follows from its plan and its age.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# username, full name, roles (BPMN lanes), phone
STAFF: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("admin", "Quản trị hệ thống", ("admin",), "0243 936 8899"),
    ("thuy", "Nguyễn Thu Thủy", ("marketing",), "0912 468 135"),
    ("hung", "Trần Quốc Hùng", ("sales",), "0983 215 476"),
    ("linh", "Phạm Khánh Linh", ("sales",), "0936 742 518"),
    ("duc", "Lê Minh Đức", ("sales",), "0977 308 264"),
    ("tuan", "Nguyễn Minh Tuấn", ("team_leader",), "0904 551 382"),
    ("ha", "Vũ Thu Hà", ("accountant",), "0868 190 427"),
    ("hoa", "Trần Thị Hoa", ("customer_care",), "0945 623 781"),
    ("ngoc", "Bùi Bảo Ngọc", ("customer_care",), "0355 817 946"),
    ("minh", "Trần Văn Minh", ("teacher",), "0396 274 105"),
    ("trang", "Đặng Thu Trang", ("teacher",), "0329 486 713"),
    ("khoa", "Hoàng Anh Khoa", ("teacher",), "0789 632 054"),
    ("tu", "Bùi Ngọc Tự", ("product",), "0918 372 640"),  # seed 001: feature requests are assigned to him
)
# The company's business calendar (working hours per weekday, Vietnam's public holidays), which
# business-time timers count in: the hours the issue names, Saturday mornings included.
BUSINESS_HOURS = {**{day: "08:00-17:30" for day in ("mon", "tue", "wed", "thu", "fri")}, "sat": "08:00-12:00"}
HOLIDAY_COUNTRY = "VN"
MORNING, AFTERNOON = ("08:00", "11:30"), ("13:30", "17:30")
# Weekly windows (0 = Monday) in which teachers teach and customer care books its care calls.
AVAILABILITY: dict[str, list[tuple[int, str, str]]] = {
    "minh": [(d, *w) for d in range(5) for w in (MORNING, AFTERNOON)],
    "trang": [(d, *MORNING) for d in range(6)] + [(d, *AFTERNOON) for d in (1, 3)],
    "khoa": [(d, *AFTERNOON) for d in range(5)] + [(5, *MORNING)],
    "hoa": [(d, w0, w1) for d in range(5) for w0, w1 in (("08:30", "11:30"), ("14:00", "17:00"))],
    "ngoc": [(d, w0, w1) for d in range(5) for w0, w1 in (("08:30", "11:30"), ("14:00", "17:00"))],
}

# name, e-mail domain slug, source, group, contact's occupation, business model,
# dedicated department, staff, students, course model, contact person
CUSTOMERS: tuple[tuple[str, str, str, str, str, str, bool, int, int, str, str], ...] = (
    (
        "Trung tâm Anh ngữ Sao Mai",
        "anhngusaomai",
        "Facebook",
        "Tiếng Anh",
        "Chủ trung tâm",
        "Tiếng Anh trẻ em và THCS, 2 cơ sở ở Cầu Giấy",
        True,
        14,
        420,
        "Theo khóa 3 tháng",
        "chị Lan",
    ),
    (
        "Trung tâm Ngoại ngữ Hoàng Gia Đà Nẵng",
        "hoanggiadanang",
        "Google",
        "Tiếng Anh",
        "Quản lý đào tạo",
        "Tiếng Anh giao tiếp và IELTS, 3 cơ sở",
        True,
        26,
        780,
        "Theo khóa 2 tháng",
        "anh Phong",
    ),
    (
        "Trường Mầm non Hoa Hướng Dương",
        "mamnonhuongduong",
        "Khách hàng giới thiệu",
        "Trường học",
        "Chủ trung tâm",
        "Trường mầm non tư thục, 9 lớp",
        False,
        32,
        260,
        "Theo năm học",
        "cô Hạnh",
    ),
    (
        "Trung tâm Luyện thi Ánh Dương Hải Phòng",
        "anhduonghp",
        "Facebook",
        "Luyện thi vào 10",
        "Chủ trung tâm",
        "Luyện thi vào 10 môn Toán, Văn, Anh",
        False,
        9,
        310,
        "Theo tháng",
        "thầy Quang",
    ),
    (
        "Học viện Lập trình Tí Hon",
        "tihonstem",
        "Website",
        "Lập trình - STEM",
        "Quản lý đào tạo",
        "Lập trình Scratch, Python cho học sinh 7-15 tuổi",
        True,
        12,
        190,
        "Theo khóa 12 buổi",
        "anh Khải",
    ),
    (
        "Trung tâm Tiếng Trung Hán Ngữ Việt",
        "hannguviet",
        "Google",
        "Tiếng Trung",
        "Chủ trung tâm",
        "Tiếng Trung giao tiếp và HSK, 1 cơ sở",
        False,
        7,
        150,
        "Theo khóa 3 tháng",
        "chị Mai Anh",
    ),
    (
        "Trung tâm Nhật ngữ Sakura Cần Thơ",
        "sakuracantho",
        "Zalo",
        "Tiếng Nhật - Hàn",
        "Quản lý đào tạo",
        "Tiếng Nhật JLPT N5-N2 và du học",
        True,
        10,
        230,
        "Theo khóa 3 tháng",
        "chị Thảo",
    ),
    (
        "Trung tâm Kỹ năng sống Cánh Diều",
        "kynangcanhdieu",
        "Hội thảo - sự kiện",
        "Kỹ năng sống",
        "Chủ trung tâm",
        "Kỹ năng sống và trại hè cho trẻ 5-12 tuổi",
        False,
        8,
        170,
        "Theo khóa 8 buổi",
        "anh Dũng",
    ),
    (
        "Trung tâm Âm nhạc Nốt Xanh",
        "amnhacnotxanh",
        "Facebook",
        "Nghệ thuật - thể thao",
        "Chủ trung tâm",
        "Piano, guitar, thanh nhạc, học 1 kèm 1 và nhóm",
        False,
        11,
        240,
        "Theo tháng",
        "chị Vy",
    ),
    (
        "Trung tâm Anh ngữ Bé Ong Vàng",
        "beongvang",
        "Facebook",
        "Tiếng Anh",
        "Chủ trung tâm",
        "Tiếng Anh mầm non và tiểu học",
        True,
        16,
        350,
        "Theo khóa 3 tháng",
        "cô Ngân",
    ),
    (
        "Trường Tiểu học Ngôi Sao Hà Đông",
        "ngoisaohadong",
        "Hội thảo - sự kiện",
        "Trường học",
        "Quản lý đào tạo",
        "Trường tiểu học tư thục, bán trú",
        True,
        58,
        820,
        "Theo năm học",
        "thầy Bình",
    ),
    (
        "Trung tâm Luyện thi Đại học Thành Công",
        "thanhcongnghean",
        "Google",
        "Luyện thi đại học",
        "Chủ trung tâm",
        "Luyện thi THPT quốc gia khối A, D",
        False,
        13,
        460,
        "Theo tháng",
        "thầy Sơn",
    ),
    (
        "Trung tâm Hàn ngữ Hanul Bắc Ninh",
        "hanulbacninh",
        "Zalo",
        "Tiếng Nhật - Hàn",
        "Nhân viên tư vấn",
        "Tiếng Hàn cho người đi làm và xuất khẩu lao động",
        True,
        9,
        280,
        "Theo khóa 4 tháng",
        "chị Hường",
    ),
    (
        "Trung tâm Toán tư duy Bright Math",
        "brightmath",
        "Website",
        "Kỹ năng sống",
        "Chủ trung tâm",
        "Toán tư duy và Soroban cho học sinh tiểu học",
        False,
        10,
        300,
        "Theo khóa 24 buổi",
        "anh Tài",
    ),
    (
        "Trung tâm Anh ngữ Việt Mỹ Quy Nhơn",
        "vietmyquynhon",
        "Facebook",
        "Tiếng Anh",
        "Quản lý đào tạo",
        "Tiếng Anh tổng quát, 2 cơ sở",
        True,
        21,
        640,
        "Theo khóa 3 tháng",
        "chị Diễm",
    ),
    (
        "Trung tâm Mỹ thuật Sắc Màu",
        "mythuatsacmau",
        "Facebook",
        "Nghệ thuật - thể thao",
        "Giáo viên",
        "Vẽ thiếu nhi và luyện thi kiến trúc",
        False,
        6,
        140,
        "Theo tháng",
        "anh Nam",
    ),
    (
        "Trung tâm Bơi lội Cá Heo Xanh",
        "caheoxanh",
        "Google",
        "Nghệ thuật - thể thao",
        "Chủ trung tâm",
        "Dạy bơi trẻ em, 2 bể bơi thuê theo mùa",
        False,
        12,
        380,
        "Theo khóa 10 buổi",
        "anh Hiếu",
    ),
    (
        "Trung tâm Anh ngữ Đại Dương Vũng Tàu",
        "daiduongvt",
        "Khách hàng giới thiệu",
        "Tiếng Anh",
        "Chủ trung tâm",
        "Tiếng Anh thiếu nhi và luyện thi Cambridge",
        True,
        15,
        410,
        "Theo khóa 3 tháng",
        "chị Trâm",
    ),
    (
        "Trường THCS Lê Quý Đôn Tư thục",
        "lequydonthcs",
        "Hội thảo - sự kiện",
        "Trường học",
        "Quản lý đào tạo",
        "Trường THCS tư thục, 24 lớp",
        True,
        70,
        960,
        "Theo năm học",
        "cô Thu",
    ),
    (
        "Trung tâm Tin học Bách Khoa",
        "tinhocbachkhoa",
        "Google",
        "Lập trình - STEM",
        "Chủ trung tâm",
        "Tin học văn phòng, chứng chỉ IC3 và MOS",
        False,
        8,
        260,
        "Theo khóa 2 tháng",
        "anh Việt",
    ),
    (
        "Trung tâm Gia sư Hồng Đức Thanh Hóa",
        "giasuhongduc",
        "Facebook",
        "Luyện thi vào 10",
        "Chủ trung tâm",
        "Gia sư tại nhà và lớp nhóm nhỏ",
        False,
        35,
        520,
        "Theo tháng",
        "thầy Tùng",
    ),
    (
        "Trung tâm Tiếng Anh Thiếu nhi KidsUp",
        "kidsup",
        "Website",
        "Tiếng Anh",
        "Quản lý đào tạo",
        "Tiếng Anh thiếu nhi theo giáo trình Cambridge",
        True,
        18,
        450,
        "Theo khóa 3 tháng",
        "chị Hà My",
    ),
    (
        "Trung tâm Luyện thi IELTS Victory",
        "ieltsvictory",
        "Google",
        "Tiếng Anh",
        "Chủ trung tâm",
        "IELTS 1 kèm 1 và lớp 6-8 học viên",
        True,
        12,
        290,
        "Theo khóa 2 tháng",
        "anh Đạt",
    ),
    (
        "Trung tâm Robotics Mầm Xanh",
        "roboticsmamxanh",
        "Hội thảo - sự kiện",
        "Lập trình - STEM",
        "Giáo viên",
        "Robotics và STEM cho trẻ 6-14 tuổi",
        False,
        7,
        160,
        "Theo khóa 16 buổi",
        "chị Nhung",
    ),
    (
        "Trung tâm Tiếng Trung Phương Đông",
        "phuongdonghp",
        "Zalo",
        "Tiếng Trung",
        "Chủ trung tâm",
        "Tiếng Trung giao tiếp và thương mại",
        False,
        6,
        130,
        "Theo khóa 3 tháng",
        "anh Long",
    ),
    (
        "Trung tâm Năng khiếu Họa Mi Huế",
        "hoamihue",
        "Facebook",
        "Nghệ thuật - thể thao",
        "Chủ trung tâm",
        "Múa, hát, vẽ và võ cho thiếu nhi",
        False,
        14,
        330,
        "Theo tháng",
        "cô Liên",
    ),
    (
        "Trung tâm Anh ngữ Ngôi Nhà Xanh Biên Hòa",
        "ngoinhaxanh",
        "Khách hàng giới thiệu",
        "Tiếng Anh",
        "Chủ trung tâm",
        "Tiếng Anh thiếu nhi, 3 cơ sở",
        True,
        29,
        870,
        "Theo khóa 3 tháng",
        "chị Phương",
    ),
    (
        "Trung tâm Luyện thi vào 10 Tri Thức",
        "trithucnamdinh",
        "Facebook",
        "Luyện thi vào 10",
        "Chủ trung tâm",
        "Luyện thi vào 10 và chuyên Toán",
        False,
        10,
        340,
        "Theo tháng",
        "thầy Hải",
    ),
    (
        "Trung tâm Ngoại ngữ Phương Nam Cần Thơ",
        "phuongnamct",
        "Google",
        "Tiếng Anh",
        "Quản lý đào tạo",
        "Tiếng Anh người lớn, TOEIC và tiếng Anh trẻ em",
        True,
        17,
        500,
        "Theo khóa 2 tháng",
        "chị Yến",
    ),
    (
        "Trung tâm Cờ vua Tiểu Kiện Tướng",
        "cotieukientuong",
        "Website",
        "Kỹ năng sống",
        "Chủ trung tâm",
        "Cờ vua và cờ tướng cho học sinh",
        False,
        5,
        120,
        "Theo khóa 12 buổi",
        "anh Kiên",
    ),
    (
        "Trung tâm Nhật ngữ Hikari Đà Nẵng",
        "hikaridanang",
        "Zalo",
        "Tiếng Nhật - Hàn",
        "Chủ trung tâm",
        "Tiếng Nhật cho kỹ sư và du học sinh",
        True,
        11,
        270,
        "Theo khóa 3 tháng",
        "anh Tuấn Anh",
    ),
    (
        "Trung tâm Anh ngữ Minh Tâm Buôn Ma Thuột",
        "minhtambmt",
        "Facebook",
        "Tiếng Anh",
        "Chủ trung tâm",
        "Tiếng Anh tiểu học và THCS",
        False,
        9,
        260,
        "Theo khóa 3 tháng",
        "cô Hoa",
    ),
    (
        "Trường Mầm non Song ngữ Ban Mai",
        "mamnonbanmai",
        "Khách hàng giới thiệu",
        "Trường học",
        "Chủ trung tâm",
        "Mầm non song ngữ Anh - Việt, 2 cơ sở",
        True,
        45,
        380,
        "Theo năm học",
        "cô Quyên",
    ),
    (
        "Trung tâm Luyện chữ đẹp Nét Việt",
        "luyenchunetviet",
        "Facebook",
        "Kỹ năng sống",
        "Giáo viên",
        "Luyện chữ đẹp cho học sinh tiểu học, học online và offline",
        False,
        8,
        310,
        "Theo khóa 20 buổi",
        "cô Thủy",
    ),
    (
        "Trung tâm Ươm Mầm Tiếng Việt - Toán",
        "uommam",
        "Website",
        "Luyện thi vào 10",
        "Chủ trung tâm",
        "Toán và Tiếng Việt tiền tiểu học, lớp 1-5",
        False,
        7,
        200,
        "Theo tháng",
        "cô Hằng",
    ),
    (
        "Trung tâm Anh ngữ Khai Trí Vinh",
        "khaitrivinh",
        "Google",
        "Tiếng Anh",
        "Quản lý đào tạo",
        "Tiếng Anh giao tiếp và luyện thi vào 10",
        True,
        13,
        390,
        "Theo khóa 3 tháng",
        "anh Hoàng",
    ),
    (
        "Trung tâm Lập trình CodeKid",
        "codekid",
        "Website",
        "Lập trình - STEM",
        "Chủ trung tâm",
        "Lập trình game và web cho học sinh THCS",
        True,
        9,
        210,
        "Theo khóa 16 buổi",
        "anh Thắng",
    ),
    (
        "Trung tâm Múa Ballet Thiên Nga",
        "balletthienga",
        "Facebook",
        "Nghệ thuật - thể thao",
        "Chủ trung tâm",
        "Ballet và múa hiện đại cho bé 4-12 tuổi",
        False,
        6,
        150,
        "Theo tháng",
        "chị Linh Chi",
    ),
    (
        "Trung tâm Luyện thi Đại học Hà Thành",
        "luyenthihathanh",
        "Google",
        "Luyện thi đại học",
        "Chủ trung tâm",
        "Luyện thi đánh giá năng lực và THPT quốc gia",
        True,
        22,
        730,
        "Theo khóa 4 tháng",
        "thầy Kiên",
    ),
    (
        "Trung tâm Tiếng Anh Giao tiếp Tự Tin Thủ Đức",
        "tutinthuduc",
        "Zalo",
        "Tiếng Anh",
        "Nhân viên tư vấn",
        "Tiếng Anh giao tiếp cho người đi làm",
        False,
        8,
        220,
        "Theo khóa 2 tháng",
        "chị Ngọc Ánh",
    ),
)


@dataclass(frozen=True)
class Plan:
    """How one customer's story goes: when its lead came in and what its people decide.

    ``ago`` days before the demo's "now" at ``at`` (business time) the lead arrives; the
    story then runs the processes step by step until "now", or until the step ``stop``
    (an element id) is reached and left open. ``when`` holds moments (days before "now",
    "HH:MM") before which a step is not done.
    """

    ago: int
    at: str = "09:00"
    stop: str = ""
    attempts: int = 0  # calls nobody answers before the customer is reached
    promising: bool = True  # the demo went well (Tiềm năng) or not (Cấp Demo, Đang chăm sóc after day 7)
    pushes: int = 0  # closing pushes ("continue") before the deal
    demo_at: tuple[int, str] | None = None
    months: int = 12  # contract length
    scores: tuple[int, ...] = (8, 9)
    care: tuple[str, ...] = ()  # monthly care outcome per month: ok | low | bad (default ok)
    problem: str = "resolved"  # resolved | stop | lock: what happens to a problem customer
    renewal: str = "renew"  # renew | considering | decline
    when: dict[str, tuple[int, str]] = field(default_factory=dict)


# The expected stage is a comment: it follows from the plan and the clock, the test checks it.
PLANS: tuple[Plan, ...] = (
    # --- Trong bán hàng ------------------------------------------------------------------
    Plan(0, "16:20", stop="Task_verify"),  # Tiếp nhận
    Plan(0, "15:55", stop="Task_verify"),  # Tiếp nhận
    Plan(0, "15:20", stop="Task_verify"),  # Tiếp nhận (reassigned at 60')
    Plan(0, "13:40", stop="Task_call"),  # Đã liên hệ
    Plan(1, "15:10", stop="Task_call"),  # Đã liên hệ
    Plan(1, "10:30", stop="Task_survey"),  # Đã liên hệ
    Plan(0, "13:30", attempts=1, stop="Task_recall"),  # Liên hệ lại (call-back tomorrow)
    Plan(1, "10:00", attempts=1, stop="Task_recall"),  # Liên hệ lại (call-back overdue)
    Plan(3, "09:00", attempts=3, stop="Task_tl_review"),  # Liên hệ lại (team leader)
    Plan(1, "09:30"),  # Cấp Demo
    Plan(0, "08:45"),  # Cấp Demo
    Plan(2, "14:00", demo_at=(0, "17:15"), stop="Task_confirm"),  # Cấp Demo (confirm call due)
    Plan(3, "09:15", stop="Task_w_hot"),  # Tiềm năng
    Plan(6, "10:00", pushes=1, stop="Task_w_hot"),  # Tiềm năng
    Plan(7, "14:30", pushes=1, stop="Task_w_hot"),  # Tiềm năng
    Plan(6, "08:30", promising=False, stop="Task_w_warm"),  # Cấp Demo (not promising, inside the 7-day closing window)
    Plan(13, "09:00", promising=False, pushes=2, stop="Task_promo_approve"),  # Đang chăm sóc (promotion)
    Plan(17, "10:00", promising=False, pushes=2, stop="Task_care"),  # Đang chăm sóc (after day 7)
    Plan(6, "14:00", stop="Task_contract"),  # Chốt
    Plan(8, "09:00", stop="Task_payment"),  # Chốt (accountant)
    # --- Sau bán hàng (all of them Chốt in the sales pipeline) ------------------------------
    Plan(7, "09:00", stop="Task_booking_call", when={"Task_payment": (0, "16:05")}),  # TIẾP NHẬN
    Plan(8, "10:30", stop="Task_booking_call"),  # TIẾP NHẬN (escalated)
    Plan(6, "09:00"),  # ĐÀO TẠO (first session today)
    Plan(6, "10:30", scores=(5, 7, 8)),  # ĐÀO TẠO
    Plan(7, "09:30", scores=(6, 7, 9)),  # ĐÀO TẠO (a third session)
    Plan(15, "09:00", stop="Task_handover"),  # BÀN GIAO
    Plan(17, "14:00", stop="Task_handover"),  # BÀN GIAO
    Plan(24, "09:00"),  # CHĂM SÓC ĐỊNH KỲ
    Plan(52, "10:00"),  # CHĂM SÓC ĐỊNH KỲ
    Plan(80, "09:00"),  # CHĂM SÓC ĐỊNH KỲ
    Plan(96, "09:30", care=("ok", "bad")),  # CHĂM SÓC ĐỊNH KỲ (problem solved)
    Plan(120, "09:00", months=6),  # CHĂM SÓC ĐỊNH KỲ (renewed)
    Plan(58, "09:00", care=("low",), stop="Task_problem"),  # CÓ VẤN ĐỀ
    Plan(78, "10:00", care=("ok", "bad"), stop="Task_problem"),  # CÓ VẤN ĐỀ
    Plan(88, "09:00", care=("ok", "low"), problem="stop"),  # DỪNG CHĂM SÓC
    Plan(114, "09:00", months=6, renewal="decline"),  # DỪNG CHĂM SÓC
    Plan(62, "09:30", care=("bad",), problem="lock"),  # KHÓA
    Plan(100, "10:00", care=("ok", "low"), problem="lock"),  # KHÓA
    Plan(104, "09:00", months=6, stop="Task_renewal_call"),  # CHĂM SÓC TÁI KÝ
    Plan(110, "09:30", months=6, renewal="considering"),  # CHĂM SÓC TÁI KÝ
)
# (package, months) -> price in VND
PRICES = {
    ("Cơ bản", 12): 6_900_000,
    ("Chuyên nghiệp", 12): 12_900_000,
    ("Doanh nghiệp", 12): 19_900_000,
    ("Chuyên nghiệp", 6): 7_500_000,
}

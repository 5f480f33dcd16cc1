"""The labels of EasyEdu's roles (``runner.crm.models.ROLES``) and staff facts on the admin pages, translated.

``create_app`` puts them in ``app.extensions["role_labels"]``; the admin pages show a role without a
label by its name (as in a runner without the CRM, whose groups are whatever its users were given).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

ROLE_LABELS = {
    "marketing": _l("Marketing"),
    "sales": _l("Kinh doanh"),
    "team_leader": _l("Trưởng nhóm"),
    "accountant": _l("Kế toán"),
    "customer_care": _l("Chăm sóc khách hàng"),
    "teacher": _l("Giáo viên"),
    "product": _l("Sản phẩm"),
    "admin": _l("Quản trị"),
}

# The facts the CRM keeps about staff (``runner.crm.contacts.FIELDS``), as the admin pages label them.
FACT_LABELS = {
    "phone": _l("Số điện thoại"),
    "zalo_user_id": _l("Zalo ID"),
    "email": _l("Email"),
    "full_name": _l("Họ tên"),
}

"""The labels of EasyEdu's roles (``runner.crm.models.ROLES``) on the admin pages, translated like every web text.

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
    "admin": _l("Quản trị"),
}

"""Customers: search, the 360° customer page, pipeline boards, "My Calendar" with its feed, new leads.

The pages read ``runner.crm.pages`` and ``runner.crm.views``; the writes are a Thảo luận note and
a new lead (``runner.crm.intake``). Their templates are in ``web/crm/templates/customers/``. The
iCalendar feed is public on purpose (calendar apps cannot sign in): its address carries an HMAC of
the username made with the app's secret key, and a wrong one is a 404.

One blueprint (``bp``, endpoints ``customers.*``) shared by one module per feature: ``profiles`` (search,
the 360° page and its notes), ``edits`` (the edit form), ``boards``, ``my_calendar`` (the week view and
the feed), ``leads`` (the new-lead form), ``lead_keys`` (admins' keys of website forms); ``display`` holds
the labels and value formats they share.
"""

from __future__ import annotations

from web.crm.customers import boards, edits, lead_keys, leads, my_calendar, profiles
from web.crm.customers.blueprint import NAV, bp
from web.crm.customers.my_calendar import feed_token, token_user
from web.crm.customers.profiles import page_url

PAGES = (profiles, edits, boards, my_calendar, leads, lead_keys)  # importing them adds their views to ``bp``

__all__ = ["NAV", "PAGES", "bp", "feed_token", "page_url", "token_user"]

"""The EasyEdu CRM's pages: customers, pipeline boards, My Calendar (``customers``), with their templates.

The generic pages (inbox, diagrams, admin, API) never name these endpoints; they link a business key
through ``web.navigation.customer_url``, which ``create_app`` points at ``customers.page_url``.
"""

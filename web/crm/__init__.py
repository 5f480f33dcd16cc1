"""The EasyEdu CRM's pages: customers, pipeline boards, My Calendar (``customers``), with their templates,
the customer panel beside a task's form (``task_panel``), and its REST operation (``api``).

The generic pages (inbox, diagrams, admin) never name these endpoints or templates; they go through
``web.navigation.customer_url`` and ``customer_context``, which ``create_app`` points here. The generic
API (``web.api``, ``web.openapi``) never names the customer endpoint either: ``web.crm.api`` brings its
blueprint and its share of the OpenAPI document.
"""

"""The EasyEdu CRM's pages: customers, pipeline boards, My Calendar (``customers``), with their templates,
and the customer panel beside a task's form (``task_panel``).

The generic pages (inbox, diagrams, admin) never name these endpoints or templates; they go through
``web.navigation.customer_url`` and ``customer_context``, which ``create_app`` points here.
"""

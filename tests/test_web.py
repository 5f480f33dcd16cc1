"""The app factory: health probe, blueprints, navigation by role, error pages (HTML, JSON under /api)."""

from __future__ import annotations

import re
from pathlib import Path

import grimp

from runner.settings import Settings
from tests.webapp import WebClient, add_user
from web import create_app
from web.navigation import NavItem, safe_path


def test_healthz_reports_the_runner_clock(sqlite_url: str) -> None:
    settings = Settings.from_env({}, database_url=sqlite_url, clock="virtual")
    client = create_app({"TESTING": True, "SECRET_KEY": "test", "RUNNER_SETTINGS": settings}).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert response.get_json()["now"].startswith("20")


def _nav(page: str) -> list[str]:
    bar = page[page.index('<nav class="mainnav"') : page.index("</nav>")]
    return [label.strip() for label in re.findall(r">([^<]+)</a>", bar)]


def test_the_top_bar_shows_each_role_its_pages(app, client: WebClient, staff, runner) -> None:
    add_user(runner, "lead1", ["sales", "team_leader"])
    client.login("sales1")
    nav = _nav(client.get("/inbox/").get_data(as_text=True))
    assert "Việc của tôi" in nav and "Việc của nhóm" in nav and "Tất cả việc" not in nav
    client.logout()
    client.login("lead1")
    assert "Tất cả việc" in _nav(client.get("/inbox/").get_data(as_text=True))
    expected = {item.endpoint for item in app.extensions["nav"]}
    assert all(isinstance(item, NavItem) for item in app.extensions["nav"]) and "inbox.my_tasks" in expected


def test_the_start_page_is_the_inbox(client: WebClient, staff) -> None:
    assert client.get("/").headers["Location"] == "/login"
    client.login("teacher1")
    assert client.get("/").headers["Location"] == "/inbox/"


def test_error_pages_are_html_and_json_under_api(client: WebClient, staff) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "Không tìm thấy trang" in page.get_data(as_text=True)
    api = client.get("/api/no/such/thing")
    assert api.status_code == 404 and api.is_json and set(api.get_json()) == {"error", "detail"}


def test_safe_path_keeps_redirects_on_this_site() -> None:
    assert safe_path("/inbox/?due=overdue") == "/inbox/?due=overdue"
    for bad in (None, "", "https://evil.example", "//evil.example", "/\\evil.example", "inbox"):
        assert safe_path(bad, "/x") == "/x"


def test_blueprints_never_import_the_factory_package() -> None:
    # Flask's tutorial wiring: create_app imports the blueprints, they take shared objects from web.extensions.
    graph = grimp.build_graph("web")
    assert graph.find_modules_that_directly_import("web") == set()


GENERIC_API = ("web.api", "web.openapi", "web.openapi_links")


def test_the_generic_api_imports_nothing_of_the_crm() -> None:
    # The customer endpoint and its share of the OpenAPI document live in web.crm.api (issue 10).
    graph = grimp.build_graph("web", "runner")
    for module in (m for package in GENERIC_API for m in (package, *graph.find_descendants(package))):
        imported = graph.find_modules_directly_imported_by(module)
        assert {m for m in imported if m.startswith(("runner.crm", "web.crm"))} == set(), module
        assert not graph.chain_exists(importer=module, imported="web.crm", as_packages=True), module


def _link(operation_id: str, **parameters: str) -> tuple[str, dict[str, str]]:
    return operation_id, {name: f"$response.body#{pointer}" for name, pointer in parameters.items()}


def test_the_served_document_still_holds_the_customer_operation_and_its_links(client: WebClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    operation = doc["paths"]["/api/customers/{business_key}"]["get"]
    assert operation["operationId"] == "getCustomer" and operation["tags"] == ["customers"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Customer"
    }
    assert {"Customer", "TimelineItem", "InstanceSummary"} <= set(doc["components"]["schemas"])
    links = {
        name: (link["operationId"], link.get("parameters", {})) for name, link in _links(doc, "getCustomer", "200")
    }
    assert links == {
        "GetCustomerInstance": _link("getInstance", instance_id="/instances/0/id"),
        "ListCustomerTasks": _link("listTasks", business_key="/customer/id"),
        "ListCustomerInstances": _link("listInstances", business_key="/customer/id"),
        "SearchCustomerCode": _link("listCustomers", q="/customer/id"),
    }
    search = {
        name: (link["operationId"], link.get("parameters", {})) for name, link in _links(doc, "listCustomers", "200")
    }
    assert search == {
        "GetFoundCustomer": _link("getCustomer", business_key="/customers/0/id"),
        "NextCustomers": _link("listCustomers", after="/next"),
    }
    # every answer that holds an instance links to its customer
    for operation_id, status, prefix in (
        ("startInstance", "201", ""),
        ("listInstances", "200", "/instances/0"),
        ("getInstance", "200", ""),
        ("completeTask", "200", "/instance"),
        ("sendMessage", "200", "/instances/0"),
    ):
        [to_customer] = [link for name, link in _links(doc, operation_id, status) if name == "GetCustomer"]
        assert (to_customer["operationId"], to_customer["parameters"]) == _link(
            "getCustomer", business_key=f"{prefix}/business_key"
        ), operation_id


def _links(doc: dict, operation_id: str, status: str) -> list[tuple[str, dict]]:
    [operation] = [op for item in doc["paths"].values() for op in item.values() if op["operationId"] == operation_id]
    return list(operation["responses"][status]["links"].items())


def test_the_web_app_never_opens_a_database_session() -> None:
    # Pages read through the runner's API and query functions (runner.queries, runner.crm.pages).
    web = Path(__file__).resolve().parent.parent / "web"
    for path in web.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for needle in (".db.read(", ".db.unit(", "sqlalchemy"):
            assert needle not in source, f"{path.relative_to(web.parent)} uses {needle}"

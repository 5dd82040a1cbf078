"""Security headers on every kind of response (error pages, toasts, JSON, CSV, redirects), and error
pages that leak nothing: no traceback, no SQL, no file paths, no exception text."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from crm_web.extensions import db
from tests import factories
from tests.conftest import HX, CSRFClient, build_app
from tests.security_support import build_world, make_users

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
LEAKS = (
    "Traceback",
    'File "',
    "/work/",
    "site-packages",
    "SELECT",
    "sqlalchemy",
    "psycopg",
    "sqlite3",
    "ZeroDivisionError",
    "OperationalError",
    "ProgrammingError",
    "secret-detail",
)


def assert_secure_headers(response, what) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (what, name, response.headers.get(name))
    csp = response.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, (what, csp)


def assert_no_leak(body: str, what) -> None:
    for leak in LEAKS:
        assert leak not in body, (what, leak)


@pytest.fixture
def signed_in(client, org):
    world = build_world(org, make_users(org), "Err")
    factories.make_api_token(org)
    with client.session_transaction() as session:
        session["_user_id"] = world.users["sales"].get_id()
    return world


def test_headers_on_every_kind_of_response(app, client, signed_in):
    world = signed_in
    responses = {
        "page": client.get("/contacts"),
        "fragment": client.get("/contacts", headers=HX),
        "404 page": client.get(f"/contacts/{uuid.uuid4()}"),
        "404 toast": client.get(f"/contacts/{uuid.uuid4()}", headers=HX),
        "404 unknown url": client.get("/no/such/page"),
        "400 params": client.get("/contacts?page=abc"),
        "400 csrf": client.post("/contacts", data={}, csrf=False),
        "403": client.get("/trash"),
        "403 toast": client.get("/trash", headers=HX),
        "405": client.put("/contacts"),
        "422 form": client.post("/contacts", data={"first_name": ""}),
        "redirect": client.post(
            f"/contacts/{world['contact']}/delete".replace(str(world["contact"]), str(uuid.uuid4()))
        ),
        "csv": client.get("/contacts/export.csv"),
        "healthz json": client.get("/healthz"),
        "internal json 401": client.get(f"/internal/orgs/{world['org']}/stats"),
        "internal json": client.get(f"/internal/orgs/{world['org']}/stats", headers=factories.BEARER),
        "internal json 400": client.get("/internal/orgs/nope/stats", headers=factories.BEARER),
        "static": client.get("/static/css/app.css"),
    }
    assert responses["404 page"].status_code == 404 and responses["403"].status_code == 403
    assert responses["internal json 400"].status_code == 400 and responses["internal json 400"].is_json
    for what, response in responses.items():
        response.get_data()
        response.close()  # the static file's handle
        assert_secure_headers(response, what)
        if response.status_code >= 400:
            assert_no_leak(response.get_data(as_text=True), what)


def test_anonymous_responses_have_the_headers(app, client):
    for what, response in {
        "login": client.get("/login"),
        "redirect": client.get("/contacts"),
        "401 htmx": client.get("/contacts", headers=HX),
    }.items():
        assert_secure_headers(response, what)


@pytest.fixture
def crashing_app(tmp_path):
    """An app with routes that fail unexpectedly (added before its first request)."""
    app = build_app(f"sqlite:///{tmp_path / 'crash.sqlite3'}", PROPAGATE_EXCEPTIONS=False)

    @app.get("/boom")
    def boom():
        raise ZeroDivisionError("secret-detail /work/crm_web/x.py")

    @app.get("/boom-sql")
    def boom_sql():
        db.session.execute(text("SELECT secret_detail FROM no_such_table"))

    app.view_functions["boom"].is_public = True
    app.view_functions["boom_sql"].is_public = True
    app.test_client_class = CSRFClient
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("path", ["/boom", "/boom-sql"])
@pytest.mark.parametrize("headers", [{}, HX, {"Accept": "application/json"}], ids=["page", "htmx", "json"])
def test_500_leaks_nothing_and_keeps_the_headers(crashing_app, path, headers, caplog):
    response = crashing_app.test_client().get(path, headers=headers)
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body
    assert_no_leak(body, path)
    assert_secure_headers(response, path)
    assert any("Unhandled error" in r.message for r in caplog.records)  # the detail goes to the log only

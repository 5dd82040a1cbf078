"""Security headers, login rate limiting, session rotation."""

import re

import pytest

from tests import factories
from tests.conftest import base_config


def test_security_headers_on_every_response(client, app):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_no_inline_scripts_in_the_layout(client, login):
    login("admin")
    body = client.get("/").get_data(as_text=True)
    for tag in re.findall(r"<script[^>]*>", body):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_login_is_rate_limited_with_a_clear_message(tmp_path):
    from flask_migrate import upgrade

    from crm_web import create_app
    from crm_web.extensions import db
    from tests.conftest import MIGRATIONS, CSRFClient

    app = create_app({**base_config(f"sqlite:///{tmp_path / 'rl.sqlite3'}"), "LOGIN_RATE_LIMIT": "3 per minute"})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        org = factories.make_org("rl")
        factories.make_user(org, email="rl@rl.example", password="right")
        app.test_client_class = CSRFClient
        client = app.test_client()
        statuses = [
            client.post("/login", data={"email": "rl@rl.example", "password": "wrong"}).status_code for _ in range(4)
        ]
        assert statuses[:3] == [422, 422, 422]
        assert statuses[3] == 429
        blocked = client.post("/login", data={"email": "rl@rl.example", "password": "right"})
        assert blocked.status_code == 429
        assert "Too many sign-in attempts" in blocked.get_data(as_text=True)
        db.session.remove()
        db.engine.dispose()


def test_session_is_renewed_at_login(client, org):
    factories.make_user(org, email="rep@acme.example", password="s3cret")
    with client.session_transaction() as session:
        session["planted"] = "by-attacker"
    page = client.get("/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "rep@acme.example", "password": "s3cret", "csrf_token": token}, csrf=False)
    with client.session_transaction() as session:
        assert "planted" not in session
        assert "_user_id" in session


# --- production defaults (issue 16) ------------------------------------------------------------


@pytest.mark.parametrize(
    "environment, secure",
    [
        ({"CRM_ENV": "production"}, True),
        ({"CRM_ENV": "production", "CRM_ALLOW_PLAIN_HTTP": "true"}, False),  # a plain-HTTP test set-up
        ({"CRM_ENV": "production", "SESSION_COOKIE_SECURE": "false"}, False),
        ({"CRM_ENV": "development"}, False),
        ({"CRM_ENV": "development", "SESSION_COOKIE_SECURE": "true"}, True),
    ],
)
def test_production_defaults_to_secure_cookies_and_hsts(monkeypatch, environment, secure):
    from crm_web.config import settings_from_env

    for name in ("CRM_ENV", "CRM_ALLOW_PLAIN_HTTP", "SESSION_COOKIE_SECURE", "HSTS_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = settings_from_env()
    assert settings["SESSION_COOKIE_SECURE"] is secure and settings["REMEMBER_COOKIE_SECURE"] is secure
    assert settings["HSTS_SECONDS"] == (31_536_000 if secure else 0)


def test_a_production_sign_in_sets_secure_cookies_and_hsts(tmp_path, monkeypatch):
    from flask_migrate import upgrade

    from crm_web import create_app
    from crm_web.extensions import db
    from tests.conftest import MIGRATIONS, CSRFClient

    monkeypatch.setenv("CRM_ENV", "production")
    for name in ("CRM_ALLOW_PLAIN_HTTP", "SESSION_COOKIE_SECURE", "HSTS_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    config = base_config(f"sqlite:///{tmp_path / 'prod.sqlite3'}")
    app = create_app({**config, "CRM_ENV": "production", "SECRET_KEY": "a-production-secret"})
    app.test_client_class = CSRFClient
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        org = factories.make_org("prod")
        factories.make_user(org, email="prod@prod.example", password="right")
        client = app.test_client()
        response = client.post("/login", data={"email": "prod@prod.example", "password": "right", "remember": "y"})
        assert response.status_code == 303
        cookies = response.headers.getlist("Set-Cookie")
        assert len(cookies) == 2 and all("; Secure" in cookie for cookie in cookies), cookies  # session, remember
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        db.session.remove()
        db.engine.dispose()


def test_pages_and_fragments_are_never_stored_by_a_browser_or_proxy(client, login):
    login("admin")
    responses = {
        "page": client.get("/contacts"),
        "fragment": client.get("/contacts", headers={"HX-Request": "true"}),
        "dashboard panel": client.get("/dashboard/kpis", headers={"HX-Request": "true"}),
        "error page": client.get("/contacts/not-an-id"),
        "csv": client.get("/contacts/export.csv"),
        "login page": client.get("/login"),
    }
    for what, response in responses.items():
        response.get_data()
        assert response.headers["Cache-Control"] == "no-store", what
    static = client.get("/static/css/app.css")
    assert "no-store" not in static.headers.get("Cache-Control", "")
    static.close()
    assert "Strict-Transport-Security" not in responses["page"].headers  # not outside production

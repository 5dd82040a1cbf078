"""Security headers, login rate limiting, session rotation."""

import re

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

"""Sessions that really end: versions in sessions and remember cookies, age and idle limits, sign-in
timing and limits (issue 16, "Sessions and sign-in")."""

from __future__ import annotations

import re
import time

import pytest

from crm_web.auth import SESSION_SEEN, SESSION_STARTED
from tests import factories
from tests.conftest import HX, base_config

PASSWORD = "tidal-lantern-42"


def login_form(client, email, password=PASSWORD, **extra):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra}, csrf=False)


@pytest.fixture
def rep(org):
    return factories.make_user(org, role="sales", email="rep@acme.test", password=PASSWORD)


def _session_cookie(client) -> str:
    return client.get_cookie("session").value


def test_a_session_cookie_copied_before_sign_out_is_refused_after_it(app, client, rep):
    assert login_form(client, rep.email).status_code == 303
    copied = _session_cookie(client)
    assert client.post("/logout").status_code == 303
    thief = app.test_client()
    thief.set_cookie("session", copied)
    response = thief.get("/contacts")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "You were signed out" in thief.get("/login").get_data(as_text=True)


def test_a_remember_cookie_copied_before_sign_out_is_refused_after_it(app, client, rep):
    assert login_form(client, rep.email, remember="y").status_code == 303
    remembered = client.get_cookie("remember_token").value
    client.post("/logout")
    thief = app.test_client()
    thief.set_cookie("remember_token", remembered)
    assert thief.get("/").status_code == 302
    assert thief.get_cookie("remember_token") is None  # the stale cookie is deleted


def test_a_remember_cookie_starts_a_new_session_after_the_idle_timeout(app, client, rep):
    assert login_form(client, rep.email, remember="y").status_code == 303
    with client.session_transaction() as session:
        session[SESSION_SEEN] = int(time.time()) - app.config["SESSION_IDLE_MINUTES"] * 60 - 5
    assert client.get("/").status_code == 200  # "keep me signed in"
    with client.session_transaction() as session:
        assert time.time() - session[SESSION_STARTED] < 5


@pytest.mark.parametrize("key,message", [(SESSION_SEEN, "without activity"), (SESSION_STARTED, "hours old")])
def test_a_session_ends_after_its_idle_timeout_or_maximum_age(app, client, rep, key, message):
    assert login_form(client, rep.email).status_code == 303
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        session[key] = int(time.time()) - app.config["SESSION_MAX_AGE_HOURS"] * 3600 - 5
    response = client.get("/contacts", headers=HX)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")
    assert message in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_an_old_style_session_without_a_version_is_refused(client, rep):
    with client.session_transaction() as session:
        session["_user_id"] = str(rep.id)
    assert client.get("/").status_code == 302


def test_a_deactivated_users_open_session_is_refused_at_its_next_request(client, rep, users):
    from crm_web.services.users import UserService

    assert login_form(client, rep.email).status_code == 303
    assert client.get("/").status_code == 200
    UserService(factories.actor_for(users["admin"])).deactivate(rep.id)
    response = client.get("/contacts")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "deactivated" in client.get("/login").get_data(as_text=True)
    assert login_form(client, rep.email).status_code == 422


def test_a_role_change_ends_the_users_sessions(client, rep, users):
    from crm_web.services.users import UserService

    assert login_form(client, rep.email).status_code == 303
    UserService(factories.actor_for(users["admin"])).change_role(rep.id, role="manager")
    assert client.get("/").status_code == 302


def test_sign_in_spends_a_password_check_for_unknown_and_deactivated_accounts(client, org, monkeypatch):
    from crm_web.services import accounts

    factories.make_user(org, email="gone@acme.test", password=PASSWORD, active=False)
    checks = []
    monkeypatch.setattr(accounts, "spend_a_password_check", lambda password: checks.append(password))
    assert login_form(client, "nobody@acme.test").status_code == 422
    assert login_form(client, "gone@acme.test").status_code == 422
    assert checks == [PASSWORD, PASSWORD]


def _limited_app(tmp_path, **config):
    from flask_migrate import upgrade

    from crm_web import create_app
    from tests.conftest import MIGRATIONS, CSRFClient

    app = create_app({**base_config(f"sqlite:///{tmp_path / 'rl.sqlite3'}"), **config})
    app.test_client_class = CSRFClient
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    return app


def _post(client, email, password, address="10.0.0.1", **headers):
    return client.post(
        "/login", data={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}, headers=headers
    )


def test_the_account_limit_counts_failures_only_and_holds_across_addresses(tmp_path):
    from crm_web.extensions import db

    app = _limited_app(tmp_path, LOGIN_ACCOUNT_RATE_LIMIT="3 per minute", LOGIN_RATE_LIMIT="1000 per minute")
    with app.app_context():
        org = factories.make_org("rl")
        factories.make_user(org, email="rl@rl.example", password=PASSWORD)
        client = app.test_client()
        # Successful sign-ins are not counted.
        assert [_post(app.test_client(), "rl@rl.example", PASSWORD).status_code for _ in range(4)] == [303] * 4
        statuses = [_post(client, "RL@rl.example", "wrong", address=f"10.0.0.{n}").status_code for n in range(4)]
        assert statuses == [422, 422, 422, 429]
        blocked = _post(client, "rl@rl.example", PASSWORD, address="10.9.9.9")
        assert blocked.status_code == 429 and "for this account" in blocked.get_data(as_text=True)
        assert re.search(r"Wait [12] minutes? and try again", blocked.get_data(as_text=True))
        assert int(blocked.headers["Retry-After"]) <= 61
        # Another account from the same addresses is not blocked.
        assert _post(client, "other@rl.example", "wrong", address="10.0.0.1").status_code == 422
        db.session.remove()
        db.engine.dispose()


def test_the_address_limit_trusts_forwarded_for_only_from_configured_proxies(tmp_path):
    from crm_web.extensions import db

    app = _limited_app(tmp_path, LOGIN_RATE_LIMIT="2 per minute", TRUSTED_PROXY_HOPS=1)
    with app.app_context():
        client = app.test_client()
        # Two users behind the same proxy have their own buckets.
        for n in range(2):
            assert _post(client, f"a{n}@x.example", "wrong", **{"X-Forwarded-For": "192.0.2.1"}).status_code == 422
        assert _post(client, "b@x.example", "wrong", **{"X-Forwarded-For": "192.0.2.2"}).status_code == 422
        third = _post(client, "c@x.example", "wrong", **{"X-Forwarded-For": "192.0.2.1"})
        assert third.status_code == 429 and "from your address" in third.get_data(as_text=True)
        db.session.remove()
        db.engine.dispose()
    (tmp_path / "b").mkdir()
    untrusting = _limited_app(tmp_path / "b", LOGIN_RATE_LIMIT="2 per minute")
    with untrusting.app_context():
        client = untrusting.test_client()
        # Without trusted hops the header is ignored: a forged one cannot escape the peer's bucket.
        statuses = [
            _post(client, f"d{n}@x.example", "wrong", **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(3)
        ]
        assert statuses == [422, 422, 429]
        db.session.remove()
        db.engine.dispose()


def test_the_limits_keep_counting_in_memory_while_redis_is_away(tmp_path):
    """A Redis nobody listens on: the limiter falls back to each process's memory instead of switching off."""
    from crm_web.extensions import db

    app = _limited_app(
        tmp_path,
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
        LOGIN_ACCOUNT_RATE_LIMIT="2 per minute",
        LOGIN_RATE_LIMIT="1000 per minute",
    )
    with app.app_context():
        client = app.test_client()
        statuses = [_post(client, "x@x.example", "wrong").status_code for _ in range(3)]
        assert statuses == [422, 422, 429]
        db.session.remove()
        db.engine.dispose()

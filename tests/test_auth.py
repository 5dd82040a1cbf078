"""Login, logout, protected pages, CSRF, error pages, health check."""

import re

import pytest

from tests import factories
from tests.conftest import HX


def login_form(client, email, password, **extra):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra}, csrf=False)


def test_login_and_logout(client, org):
    factories.make_user(org, role="sales", email="rep@acme.test", password="s3cret")
    response = login_form(client, "rep@acme.test", "s3cret")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "Sign out" in page.get_data(as_text=True)
    assert client.post("/logout").status_code == 303
    assert client.get("/").status_code == 302


def test_logout_ends_a_remembered_sign_in(client, org):
    factories.make_user(org, role="sales", email="rep@acme.test", password="s3cret")
    assert login_form(client, "rep@acme.test", "s3cret", remember="y").status_code == 303
    assert client.get_cookie("remember_token") is not None
    response = client.post("/logout")
    assert response.status_code == 303
    assert client.get_cookie("remember_token") is None
    assert client.get("/").status_code == 302


def test_login_email_is_case_insensitive(client, org):
    factories.make_user(org, email="mixed@acme.test", password="pw12")
    assert login_form(client, "MIXED@acme.test", "pw12").status_code == 303


@pytest.mark.parametrize("email,password", [("rep@acme.test", "wrong"), ("nobody@acme.test", "s3cret")])
def test_wrong_credentials_show_an_inline_error(client, org, email, password):
    factories.make_user(org, email="rep@acme.test", password="s3cret")
    response = login_form(client, email, password)
    assert response.status_code == 422
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_inactive_user_cannot_sign_in(client, org):
    factories.make_user(org, email="gone@acme.test", password="s3cret", active=False)
    assert login_form(client, "gone@acme.test", "s3cret").status_code == 422


def test_next_parameter_only_allows_local_paths(client, org):
    factories.make_user(org, email="rep@acme.test", password="s3cret")
    page = client.get("/login?next=//evil.example/x")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post(
        "/login?next=//evil.example/x",
        data={"email": "rep@acme.test", "password": "s3cret", "csrf_token": token},
        csrf=False,
    )
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "path", ["/", "/contacts", "/companies", "/leads", "/deals", "/activities", "/trash", "/pipelines"]
)
def test_protected_pages_redirect_to_login(client, app, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_expired_login_on_htmx_request_gets_401_and_redirect_header(client, app):
    response = client.get("/contacts", headers=HX)
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_post_without_csrf_token_is_rejected(client, login):
    login("admin")
    response = client.post("/logout", csrf=False)
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_login_post_without_csrf_token_is_rejected(client, org):
    factories.make_user(org, email="rep@acme.test", password="s3cret")
    response = client.post("/login", data={"email": "rep@acme.test", "password": "s3cret"}, csrf=False)
    assert response.status_code == 400


def test_session_cookie_flags(client, org):
    factories.make_user(org, email="rep@acme.test", password="s3cret")
    response = login_form(client, "rep@acme.test", "s3cret")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_healthz_is_public_json(client, app):
    response = client.get("/healthz")
    assert response.status_code == 200
    # Each dependency is asked; the in-process cache is always there (Redis: tests/test_faults.py).
    assert response.json == {"status": "ok", "database": "ok", "cache": "in-process", "cache_backend": "SimpleCache"}


def test_unknown_page_is_a_404_page_that_leaks_nothing(client, login):
    login("sales")
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "<html" in body and "Traceback" not in body


def test_htmx_errors_come_back_as_a_toast(client, login):
    login("sales")
    response = client.get("/no-such-page", headers=HX)
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "#toasts"
    assert "<html" not in response.get_data(as_text=True)
    assert response.headers["Vary"] == "HX-Request" or "HX-Request" in response.headers["Vary"]


def test_unexpected_exception_is_logged_and_generic(app, client, monkeypatch, caplog):
    from crm_web.services import system

    def boom(**_):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(system, "database_status", boom)
    response = client.get("/healthz")
    assert response.status_code == 500
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "secret internal detail" in caplog.text


def test_navigation_shows_trash_and_settings_only_to_managers(client, login):
    login("sales")
    body = client.get("/").get_data(as_text=True)
    assert "/trash" not in body
    login("manager")
    body = client.get("/").get_data(as_text=True)
    assert "/trash" in body and "/pipelines" in body


def test_dev_secret_key_is_refused_in_production():
    from crm_web import create_app
    from crm_web.config import DEV_SECRET_KEY

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"CRM_ENV": "production", "SECRET_KEY": DEV_SECRET_KEY, "SQLALCHEMY_DATABASE_URI": "sqlite://"})

"""Real Chromium: sign in as the demo admin and see the application shell."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_signs_in_and_sees_the_shell(page, page_errors, live_server, browser_login):

    browser_login(page, "admin")

    assert page.locator("nav.main-nav").is_visible()
    for label in ("Dashboard", "Contacts", "Companies", "Leads", "Deals", "Activities", "Settings", "Trash"):
        assert page.locator("nav.main-nav a", has_text=label).count() == 1
    assert page.locator(".user-menu").inner_text().startswith("Ada Admin")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "global-search-input"
    assert page_errors == []


def test_wrong_password_stays_on_login_with_a_message(page, live_server):
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "nope")
    page.click("button[type=submit]")
    assert page.locator(".field-error", has_text="Wrong email or password.").is_visible()

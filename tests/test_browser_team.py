"""Real Chromium: an admin invites a user, who sets a password through the link; deactivation ends
their session at their next click; a sales user gets a 403 page for the team settings."""

import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "a quiet harbour at dawn"


def test_invite_set_password_deactivate_and_the_next_click_signs_out(
    page, page_errors, browser, live_server, browser_login
):
    email = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    browser_login(page, "admin")
    page.hover("nav.main-nav a:has-text('Settings')")
    page.click(".nav-menu-items a:has-text('Users')")
    page.wait_for_url(f"{live_server}/settings/users")
    page.click("text=Add a user")
    page.fill("input[name=name]", "Ines Invitee")
    page.fill("input[name=email]", email)
    page.select_option("select[name=role]", "sales")
    page.click("button:has-text('Add the user')")
    link_field = page.locator("#password-link")
    expect(link_field).to_be_visible()
    link = link_field.input_value()
    assert link.startswith(f"{live_server}/set-password/")
    page.click("button:has-text('Copy the link')")
    expect(page.locator("#toasts")).to_contain_text("Copied")

    invitee_context = browser.new_context()
    invitee = invitee_context.new_page()
    invitee.goto(link)
    expect(invitee.locator("h1")).to_contain_text("Welcome")
    invitee.fill("input[name=password]", "short")
    invitee.fill("input[name=confirm_password]", "short")
    invitee.click("button[type=submit]")
    expect(invitee.locator(".field-error")).to_contain_text("at least 10 characters")
    invitee.fill("input[name=password]", PASSWORD)
    invitee.fill("input[name=confirm_password]", PASSWORD)
    invitee.click("button[type=submit]")
    invitee.wait_for_url(f"{live_server}/")
    expect(invitee.locator(".user-menu")).to_contain_text("Ines Invitee")

    page.goto(f"{live_server}/settings/users?q={email}")
    page.click("text=Ines Invitee")
    page.click("text=Deactivate")
    page.click("button:has-text('Deactivate Ines Invitee')")
    expect(page.locator("#user-status")).to_contain_text("Deactivated")

    invitee.click("nav.main-nav >> text=Contacts")
    invitee.wait_for_url(f"{live_server}/login**")
    expect(invitee.locator(".alert")).to_contain_text("deactivated")
    invitee_context.close()
    assert page_errors == []


def test_a_sales_user_gets_a_403_page_for_the_team_settings(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    expect(page.locator("nav.main-nav a:has-text('Settings')")).to_have_count(0)
    response = page.goto(f"{live_server}/settings/users")
    assert response.status == 403
    expect(page.locator(".error-page")).to_contain_text("403")
    expect(page.locator(".error-page h1")).to_contain_text("permission")

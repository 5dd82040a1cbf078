"""Real Chromium: a sales rep creates a lead, qualifies it with one click, converts it and lands on the
company it became; a company deleted from the list comes back with Undo."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_sales_creates_qualifies_and_converts_a_lead(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    page.goto(f"{live_server}/leads/new")
    page.fill("#first_name", "Brenda")
    page.fill("#last_name", "Browser")
    page.fill("#company_name", "Playwright GmbH")
    page.fill("#estimated_value", "900")
    page.get_by_role("button", name="Create lead").click()
    expect(page.locator("h1")).to_have_text("Brenda Browser")

    page.locator("#lead-status").get_by_role("button", name="Qualified", exact=True).click()
    expect(page.locator("#lead-status .badge")).to_have_text("Qualified")

    page.get_by_role("link", name="Convert", exact=True).click()
    expect(page.locator("#deal_value")).to_have_value("900.00")
    page.locator("#convert-form").get_by_role("button", name="Convert").click()
    conversion = page.locator("#lead-conversion")
    expect(conversion).to_contain_text("Playwright GmbH")

    conversion.get_by_role("link", name="Playwright GmbH", exact=True).click()
    expect(page.locator("#company-stats")).to_contain_text("1 open")
    expect(page.locator("#company-contacts")).to_contain_text("Brenda Browser")
    assert page_errors == []


def test_delete_a_company_from_the_list_and_undo(page, page_errors, live_server, browser_login):
    browser_login(page, "admin")
    page.goto(f"{live_server}/companies?sort=name")
    first = page.locator("#company-table tbody tr").first
    name = first.locator("td").nth(1).locator("a").inner_text()
    first.get_by_role("button", name=f"Delete {name}").click()
    toast = page.locator(".toast", has_text="Deleted 1 company.")
    expect(toast).to_be_visible()
    expect(page.locator("#company-table tbody")).not_to_contain_text(name)
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator("#company-table tbody tr").first).to_contain_text(name)
    assert page_errors == []

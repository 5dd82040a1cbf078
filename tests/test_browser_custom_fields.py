"""Real Chromium (issue 20): an admin adds a "Renewal date" date field to deals and a "Tier" single
select to companies; a manager fills them (the deal's form, the company's detail page in place) and
adds the Tier column to the companies list."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _add_field(page, live_server, entity: str, label: str, kind: str, options: tuple[str, ...] = ()) -> None:
    page.goto(f"{live_server}/settings/fields?entity={entity}")
    form = page.locator("#field-new-form")
    form.locator("input[name=label]").fill(label)
    form.locator("select[name=type]").select_option(kind)
    for index, option in enumerate(options):
        form.locator("input[name=option_label]").nth(index).fill(option)
    form.locator("button:has-text('Add field')").click()
    expect(page.locator("#custom-fields")).to_contain_text(label)


def test_admin_defines_manager_fills_and_shows_the_column(page, page_errors, browser, live_server, browser_login):
    browser_login(page, "admin")
    _add_field(page, live_server, "deal", "Renewal date", "date")
    _add_field(page, live_server, "company", "Tier", "select", ("Gold", "Silver"))

    context = browser.new_context()
    manager = browser_login(context.new_page(), "manager")
    manager.goto(f"{live_server}/deals")
    deal_url = manager.locator("#deal-table tbody tr td a").first.get_attribute("href")
    manager.goto(f"{live_server}{deal_url}/edit")
    manager.fill("#cf_renewal_date", "2026-12-01")
    manager.click("#deal-form button:has-text('Save')")
    manager.wait_for_url(f"{live_server}{deal_url}")
    expect(manager.locator("#cf-renewal_date")).to_contain_text("2026-12-01")

    manager.goto(f"{live_server}/companies?sort=name")
    company_url = manager.locator("#company-table tbody tr td a").first.get_attribute("href")
    manager.goto(f"{live_server}{company_url}")
    manager.click("#cf-tier summary")
    manager.select_option("#cf-tier select[name=cf_tier]", label="Gold")
    manager.click("#cf-tier button:has-text('Save')")
    expect(manager.locator("#cf-tier")).to_contain_text("Gold")

    manager.goto(f"{live_server}/companies?sort=name")
    manager.click("#company-columns summary")
    manager.check("#company-columns input[value=cf_tier]")
    manager.click("#company-columns button:has-text('Apply')")
    expect(manager.locator("#company-table thead")).to_contain_text("Tier")
    expect(manager.locator("#company-table tbody tr").first).to_contain_text("Gold")
    assert "cols=" in manager.url and "cf_tier" in manager.url
    # Back to the defaults, for the other browser tests sharing the demo organisation.
    manager.click("#company-columns summary")
    manager.click("#company-columns button:has-text('Default columns')")
    expect(manager.locator("#company-table thead")).not_to_contain_text("Tier")
    context.close()
    assert page_errors == []

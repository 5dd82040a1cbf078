"""Real Chromium (issue 20): an admin adds a "Renewal date" date field to deals and a "Tier" single
select to companies; a manager fills them (the deal's form, the company's detail page in place),
filters the board to "Renewal date in the next 30 days", adds the Tier column to the companies list
and saves both as organisation views; a sales user opens them from their tabs and sees the same
records."""

import re
from datetime import UTC, datetime, timedelta

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


def _set_renewal(page, live_server, deal_url: str, day: str) -> None:
    page.goto(f"{live_server}{deal_url}/edit")
    page.fill("#cf_renewal_date", day)
    page.click("#deal-form button:has-text('Save')")
    page.wait_for_url(f"{live_server}{deal_url}")
    expect(page.locator("#cf-renewal_date")).to_contain_text(day)


def _save_organisation_view(page, name: str, path: str) -> None:
    page.locator(".save-view summary", has_text="Save view").click()
    form = page.locator(".save-view-form")
    form.locator("input[name=name]").fill(name)
    form.locator("input[value=organisation]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(path + r"\?view=[0-9a-f-]{36}$"))
    expect(page.locator("[data-view-name]")).to_have_text(name)


def _cards(page) -> list[str]:
    page.wait_for_selector("#board")
    return page.locator("#board .deal-card-title").all_inner_texts()


def _companies(page) -> tuple[list[str], list[str]]:
    page.wait_for_selector("#company-table")
    names = page.locator("#company-table tbody tr td:not(.actions) > a").all_inner_texts()
    return names, page.locator("#company-table tbody td[data-column=cf_tier]").all_inner_texts()


def _open_tab(page, live_server, path: str, name: str) -> None:
    page.goto(f"{live_server}{path}")
    page.locator("#view-tabs a.view-tab", has_text=name).click()
    page.wait_for_url(re.compile(path + r"\?view=[0-9a-f-]{36}$"))
    expect(page.locator("[data-view-name]")).to_have_text(name)


def test_admin_defines_manager_fills_and_shares_views_sales_opens_them(
    page, page_errors, browser, live_server, browser_login
):
    browser_login(page, "admin")
    _add_field(page, live_server, "deal", "Renewal date", "date")
    _add_field(page, live_server, "company", "Tier", "select", ("Gold", "Silver"))

    context = browser.new_context()
    manager = browser_login(context.new_page(), "manager")
    manager.goto(f"{live_server}/deals/board")
    titles = manager.locator("#board .deal-card-title")
    soon, later = (titles.nth(i) for i in range(2))
    soon_name, soon_url, later_url = soon.inner_text(), soon.get_attribute("href"), later.get_attribute("href")
    today = datetime.now(UTC).date()
    _set_renewal(manager, live_server, soon_url, (today + timedelta(days=10)).isoformat())
    _set_renewal(manager, live_server, later_url, (today + timedelta(days=90)).isoformat())

    # The board, filtered to renewals in the next 30 days with the filter builder, saved for everyone.
    manager.goto(f"{live_server}/deals/board")
    manager.locator("button[aria-controls=filter-builder]").click()
    builder = manager.locator("#filter-builder")
    builder.locator("[data-add-row]").last.click()
    row = builder.locator("[data-filter-row]").nth(0)
    row.locator("[data-field]").select_option("cf_renewal_date")
    row.locator("[data-op]").select_option("inRange")
    row.locator("[data-value-slot] select").select_option("next30Days")
    builder.locator("button[type=submit]").click()
    manager.wait_for_url(re.compile(r"f=cf_renewal_date\.inRange\.next30Days"))
    expect(manager.locator("#board .deal-card-title")).to_have_count(1)
    assert _cards(manager) == [soon_name]
    _save_organisation_view(manager, "Renewals in 30 days", "/deals/board")
    assert _cards(manager) == [soon_name]

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
    _save_organisation_view(manager, "Companies by tier", "/companies")
    companies = _companies(manager)
    assert "Gold" in companies[1]

    # A sales user finds both among their tabs and sees the same records.
    sales = browser_login(browser.new_context().new_page(), "sales")
    _open_tab(sales, live_server, "/deals/board", "Renewals in 30 days")
    assert _cards(sales) == [soon_name]
    _open_tab(sales, live_server, "/companies", "Companies by tier")
    expect(sales.locator("#company-table thead")).to_contain_text("Tier")
    assert _companies(sales) == companies
    sales.context.close()

    # Back to the defaults, for the other browser tests sharing the demo organisation.
    manager.goto(f"{live_server}/companies?sort=name&state=1")
    manager.click("#company-columns summary")
    manager.click("#company-columns button:has-text('Default columns')")
    expect(manager.locator("#company-table thead")).not_to_contain_text("Tier")
    context.close()
    assert page_errors == []

"""Real Chromium: a manager saves a filtered deals list as an organisation view; a sales user finds it
among their tabs and opens it with the same rows."""

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _rows(page) -> list[str]:
    page.wait_for_selector("#deal-table")
    return page.locator("#deal-table tbody tr[data-deal-id] td:nth-child(2)").all_inner_texts()


def test_an_organisation_view_is_shared_with_the_team(page, page_errors, browser, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/deals?f=status.equals.open&sort=name&per_page=50")
    expected = _rows(page)
    assert expected

    page.locator(".save-view summary", has_text="Save view").click()
    form = page.locator(".save-view-form")
    form.locator("input[name=name]").fill("Open deals by name")
    form.locator("input[value=organisation]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/deals\?view=[0-9a-f-]{36}$"))
    assert page.locator("[data-view-name]").inner_text() == "Open deals by name"
    assert _rows(page) == expected

    other = browser.new_context().new_page()
    browser_login(other, "sales")
    other.goto(f"{live_server}/deals")
    tab = other.locator("#view-tabs a.view-tab", has_text="Open deals by name")
    tab.click()
    other.wait_for_url(re.compile(r"/deals\?view=[0-9a-f-]{36}$"))
    assert other.url == page.url
    assert other.locator("[data-view-name]").inner_text() == "Open deals by name"
    assert _rows(other) == expected
    assert other.locator("#view-tabs a.view-tab.active").inner_text().startswith("Open deals by name")
    other.context.close()
    assert page_errors == []

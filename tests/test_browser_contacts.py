"""Contacts in real Chromium: active search, the filter builder's shareable URL, delete + Undo."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _rows(page):
    return page.locator("#contact-table tbody tr")


def _names(page):
    return _rows(page).locator("td:nth-child(2) a").all_inner_texts()


def test_active_search(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    page.goto(f"{live_server}/contacts?sort=-name")
    first = _names(page)[0]
    partial = first.split()[-1][:4]  # SQLite contains search; typo tolerance is a PostgreSQL service test
    page.fill("#list-search", partial)
    # The applied sort travels with the search (the list state is included from the table block).
    page.wait_for_url(re.compile(r"q=" + re.escape(partial) + "&sort=-name"))
    expect(page.locator("#contact-table tbody")).to_contain_text(first)
    assert len(_names(page)) < 30
    assert page_errors == []


def test_filter_builder_url_is_shareable(page, page_errors, live_server, browser_login, context):
    browser_login(page, "sales")
    page.goto(f"{live_server}/contacts?per_page=100")
    builder = page.locator("#filter-builder")
    expect(builder).to_be_hidden()  # collapsed behind its "Filter" button
    page.locator("#filter-disclosure > summary").click()
    builder.locator("[data-add-row]").last.click()
    row = builder.locator("[data-filter-row]").nth(0)
    row.locator("[data-field]").select_option("status")
    row.locator("[data-op]").select_option("in")
    chips = row.locator("[data-value-slot] [data-chips]")  # checkboxes, not a native multi-select
    chips.get_by_label("Prospect").check()
    chips.get_by_label("Customer").check()
    builder.locator(".filter-actions [data-add-row]").click()
    second = builder.locator("[data-filter-row]").nth(1)
    second.locator("[data-field]").select_option("email")
    second.locator("[data-op]").select_option("contains")
    second.locator("[data-value-slot] input").fill("e")
    builder.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"f=status\.in\.prospect,customer&f=email\.contains\.e"))
    expect(page.locator("#contact-table")).to_be_visible()
    names = _names(page)
    assert names, "the demo data has prospects/customers with an 'e' in their email"
    shared = context.new_page()
    shared.goto(page.url)
    assert _names(shared) == names
    # The shared page's builder shows the two conditions again, behind "Filter 2".
    expect(shared.locator("#filter-disclosure [data-filter-count]")).to_have_text("2")
    expect(shared.locator("#filter-builder [data-filter-row]")).to_have_count(2)
    assert page_errors == []


def test_delete_and_undo(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    page.goto(f"{live_server}/contacts?scope=mine")
    name = _names(page)[0]
    _rows(page).first.get_by_role("button", name=f"Delete {name}").click()
    toast = page.locator("#toasts .toast").filter(has_text="Deleted 1 contact")
    expect(toast).to_be_visible()
    expect(page.locator("#contact-table tbody")).not_to_contain_text(name)
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator("#contact-table tbody")).to_contain_text(name)
    expect(page.locator("#toasts")).to_contain_text("Restored 1 contact")
    assert page_errors == []


def test_duplicate_email_warning_while_typing(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    page.goto(f"{live_server}/contacts")
    email = page.locator("#contact-table tbody a[href^='mailto:']").first.inner_text().strip()
    page.goto(f"{live_server}/contacts/new")
    page.fill("#email", email.upper())  # the check is case-insensitive
    warning = page.locator("#email-warning")
    expect(warning).to_contain_text("Another contact already uses this email")
    page.fill("#email", "nobody-uses-this@example.org")
    expect(warning).not_to_contain_text("Another contact")
    assert page_errors == []

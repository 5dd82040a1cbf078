"""Real Chromium: after "Sign out" nothing of the user is left in the tab (issue 16)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

HISTORY_CACHE = "htmx-history-cache"


def _history_cache(page) -> str | None:
    return page.evaluate(f"sessionStorage.getItem('{HISTORY_CACHE}')")


def test_sign_out_leaves_no_page_of_the_user_in_the_tab(page, page_errors, live_server, browser_login):
    browser_login(page, "admin")
    page.goto(f"{live_server}/contacts?sort=-name")
    first = page.locator("#contact-table tbody tr td:nth-child(2) a").first.inner_text()
    partial = first.split()[-1][:4]
    page.fill("#list-search", partial)  # an htmx swap with hx-push-url: htmx would snapshot the page now
    page.wait_for_url(re.compile(r"q=" + re.escape(partial)))
    expect(page.locator("#contact-table tbody")).to_contain_text(first)
    # htmx keeps no copy of the signed-in page in sessionStorage (it used to keep the last 10 pages).
    assert _history_cache(page) is None

    page.locator(".user-menu button", has_text="Sign out").click()
    page.wait_for_url(re.compile(r"/login$"))
    assert _history_cache(page) is None
    assert page.evaluate("Object.keys(sessionStorage)") in ([], ["htmx-current-path-for-history"])

    # Back and forward ask the server (Cache-Control: no-store), which now answers the sign-in page.
    for _ in range(3):
        page.go_back()
        page.wait_for_load_state()
        expect(page.locator("form input[name=password]")).to_be_visible()
        body = page.content()
        assert first not in body and "Ada Admin" not in body
    assert page_errors == []


def test_a_history_cache_left_by_an_older_page_is_dropped(page, live_server, browser_login):
    """A tab that still holds htmx's cache from before this release loses it on the next page load."""
    page.goto(f"{live_server}/login")
    page.evaluate(f'sessionStorage.setItem(\'{HISTORY_CACHE}\', \'[{{"url": "/contacts", "content": "secret"}}]\')')
    page.reload()
    assert _history_cache(page) is None

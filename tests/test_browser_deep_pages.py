"""The pager of a list too long to count, on a phone (390x844, touch), in real Chromium: "of more than
N", Next by cursor through htmx (the URL follows), Last read from the end, all within the screen and
touch-sized. A screenshot goes to test-artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import LIVE_APPS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
TOUCH = 32


@pytest.fixture
def small_bound(live_server, monkeypatch):
    """The live server's app counts lists up to 5 rows (its demo organisation has 30 contacts)."""
    monkeypatch.setitem(LIVE_APPS[live_server].config, "LIST_COUNT_BOUND", 5)


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    for link in page.locator("nav.pagination a").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], link.inner_text()
        assert box["height"] >= TOUCH and box["width"] >= TOUCH, f"{link.inner_text()} is {box} on a phone"


def test_a_long_list_pages_by_cursor_on_a_phone(browser, live_server, small_bound):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, has_touch=True)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", "admin@example.com")
        page.fill("input[name=password]", "demo")
        page.locator("button[type=submit]").tap()
        page.wait_for_url(re.compile(re.escape(live_server) + r"/(my-day)?$"))
        page.goto(f"{live_server}/contacts?per_page=10")
        pager = page.locator("#contact-table nav.pagination")
        expect(pager).to_contain_text("1–10 of more than 5")
        _fits(page)
        pager.locator("a[rel=next]").tap()
        expect(pager).to_contain_text("11–20 of more than 5")
        expect(page).to_have_url(re.compile(r"cursor="))
        expect(pager).to_contain_text("Page 2")
        _fits(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "phone-deep-page.png"))
        pager.locator("a[rel=last]").tap()
        expect(pager).to_contain_text("Last page")
        expect(pager.locator("a[rel=next]")).to_have_count(0)
        _fits(page)
        pager.locator("a[rel=first]").tap()
        expect(pager).to_contain_text("1–10 of more than 5")
        assert errors == []
    finally:
        context.close()

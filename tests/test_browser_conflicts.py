"""Real Chromium: two users edit the same contact; the later save is told who changed it, keeps the
typed text (full edit form and inline field), and can Save anyway."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _unexpected(errors: list[str]) -> list[str]:
    """Console errors besides the 409 itself (Chromium and htmx both log the status)."""
    return [e for e in errors if "409" not in e]


def _a_contact_url(page, live_server, nth: int) -> str:
    page.goto(f"{live_server}/contacts?sort=-name")
    return live_server + page.locator("#contact-table tbody tr td:nth-child(2) a").nth(nth).get_attribute("href")


def test_stale_edit_form_shows_the_conflict_and_keeps_the_typed_text(
    page, page_errors, browser, live_server, browser_login
):
    browser_login(page, "admin")
    contact = _a_contact_url(page, live_server, 3)
    page.goto(contact + "/edit")
    # Max opens the same form later, in his own browser, and saves first.
    other = browser.new_context().new_page()
    browser_login(other, "manager")
    other.goto(contact + "/edit")
    other.fill("#title", "Head of Theirs")
    other.get_by_role("button", name="Save", exact=True).click()
    other.wait_for_url(contact)

    page.fill("#title", "Head of Mine")
    page.get_by_role("button", name="Save", exact=True).click()
    conflict = page.locator("#contact-form #edit-conflict")
    expect(conflict).to_contain_text(re.compile(r"Max Manager changed this contact at \d\d:\d\d UTC"))
    expect(page.locator("#title")).to_have_value("Head of Mine")  # the typed text is still there
    assert page.url == contact + "/edit" and _unexpected(page_errors) == []
    expect(conflict.get_by_role("link", name="Reload the latest version")).to_have_attribute(
        "href", contact.removeprefix(live_server) + "/edit"
    )
    conflict.get_by_role("button", name="Save anyway").click()
    page.wait_for_url(contact)
    expect(page.locator("#field-title")).to_contain_text("Head of Mine")
    other.context.close()


def test_inline_edit_of_a_field_changed_meanwhile_shows_the_conflict_inline(
    page, page_errors, browser, live_server, browser_login
):
    browser_login(page, "admin")
    contact = _a_contact_url(page, live_server, 4)
    page.goto(contact)
    page.locator("#field-title button.inline-edit").click()
    page.locator("#field-title input[name=title]").wait_for()

    other = browser.new_context().new_page()
    browser_login(other, "manager")

    def their_change(text):
        other.goto(contact)
        other.locator("#field-department button.inline-edit").click()
        other.fill("#field-department input[name=department]", text)
        other.locator("#field-department").get_by_role("button", name="Save").click()
        expect(other.locator("#field-department")).to_contain_text(text)

    their_change("Their department")
    # Another field saves fine although the record's version moved on.
    page.fill("#field-title input[name=title]", "Inline title")
    page.locator("#field-title").get_by_role("button", name="Save").click()
    expect(page.locator("#field-title button.inline-edit")).to_contain_text("Inline title")
    # One inline editor at a time (issue 18): the department's is opened, then Max changes it again.
    page.locator("#field-department button.inline-edit").click()
    page.locator("#field-department input[name=department]").wait_for()
    their_change("Their second department")
    # The field Max changed is refused, inline, with the typed text kept.
    page.fill("#field-department input[name=department]", "My department")
    page.locator("#field-department").get_by_role("button", name="Save").click()
    expect(page.locator("#field-department .edit-conflict")).to_contain_text(
        "Max Manager changed the department of this contact"
    )
    expect(page.locator("#field-department input[name=department]")).to_have_value("My department")
    page.locator("#field-department").get_by_role("button", name="Save anyway").click()
    expect(page.locator("#field-department button.inline-edit")).to_contain_text("My department")
    assert _unexpected(page_errors) == []
    other.context.close()

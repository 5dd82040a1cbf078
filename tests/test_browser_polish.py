"""Polish in real Chromium (issue 18): trash buttons wait for a selection, inline edits cancel with
Esc and open one at a time, Cancel closes an inline New activity form, compact rows stick."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Contact, Organization, User
from crm_web.services.base import Actor
from crm_web.services.contacts import ContactService
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _a_contact(live_db):
    with live_db.app_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        contact = db.session.scalars(
            select(Contact).where(Contact.org_id == admin.org_id).order_by(Contact.first_name.desc())
        ).first()
        contact_id = contact.id
        db.session.remove()
    return contact_id


def test_trash_bulk_buttons_wait_for_a_selection(page, page_errors, live_server, live_db, browser_login):
    with live_db.app_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        contact = db.session.scalars(select(Contact).where(Contact.org_id == admin.org_id).order_by(Contact.id)).first()
        contact_id = contact.id
        ContactService(Actor.of(admin)).delete(contact_id)
        db.session.remove()
    browser_login(page, "admin")
    page.goto(f"{live_server}/trash?type=contact")
    restore = page.get_by_role("button", name="Restore selected")
    purge = page.get_by_role("button", name="Delete permanently…")
    expect(restore).to_be_disabled()
    expect(purge).to_be_disabled()
    box = page.locator(f"#trash-contact-{contact_id} input[name=item]")
    box.check()
    expect(restore).to_be_enabled()
    expect(purge).to_be_enabled()
    box.uncheck()
    expect(restore).to_be_disabled()
    page.locator("input[data-select-all]").check()
    expect(purge).to_be_enabled()
    assert page_errors == []


def test_inline_edits_cancel_with_esc_and_open_one_at_a_time(page, page_errors, live_server, live_db, browser_login):
    contact_id = _a_contact(live_db)
    browser_login(page, "admin")
    page.goto(f"{live_server}/contacts/{contact_id}")
    page.locator("#field-city button.inline-edit").click()
    expect(page.locator("#field-city form.inline-edit")).to_be_visible()
    page.locator("#field-title button.inline-edit").click()
    expect(page.locator("#field-title form.inline-edit")).to_be_visible()
    expect(page.locator("form.inline-edit")).to_have_count(1)  # the city editor closed
    page.locator("#field-title form.inline-edit input[name=title]").press("Escape")
    expect(page.locator("form.inline-edit")).to_have_count(0)
    expect(page.locator("#field-title button.inline-edit")).to_be_visible()
    # Cancel on the inline "New activity" form closes it and stays on the page.
    page.get_by_role("link", name="New activity").click()
    form = page.locator("#timeline-form-slot #activity-form")
    expect(form).to_be_visible()
    form.get_by_role("link", name="Cancel").click()
    expect(page.locator("#timeline-form-slot")).to_be_empty()
    assert page.url.endswith(f"/contacts/{contact_id}")
    assert page_errors == []


def test_compact_rows_are_remembered(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    page.goto(f"{live_server}/contacts")
    toggle = page.locator("[data-density-toggle]")
    comfortable = page.locator("#contact-table tbody tr").first.bounding_box()["height"]
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    page.goto(f"{live_server}/companies")
    expect(page.locator("body")).to_have_class("page-wide density-compact")
    page.goto(f"{live_server}/contacts")
    compact = page.locator("#contact-table tbody tr").first.bounding_box()["height"]
    assert compact < comfortable
    assert comfortable <= 48  # one line per row
    page.locator("[data-density-toggle]").click()
    assert page_errors == []


def _luminance(rgb: str) -> float:
    r, g, b = (int(part) for part in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_mode_follows_the_system_and_keeps_charts_readable(browser, live_server):
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "manager@example.com")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/")
    page.locator(".chart svg text").first.wait_for()
    colours = page.evaluate(
        """() => ({
          body: getComputedStyle(document.body).backgroundColor,
          text: getComputedStyle(document.body).color,
          card: getComputedStyle(document.querySelector('.chart').closest('.card') || document.body).backgroundColor,
          label: getComputedStyle(document.querySelector('.chart svg text')).fill,
        })"""
    )
    context.close()
    assert _luminance(colours["body"]) < 60 and _luminance(colours["text"]) > 180
    assert _luminance(colours["label"]) - _luminance(colours["card"]) > 90  # chart labels stand out


def test_activity_toggles_are_round(page, page_errors, live_server, live_db, browser_login):
    """The Complete tick on My day and the timeline is a circle (.btn-icon.btn-sm's width made it an oval)."""
    with live_db.app_context():  # one open activity of the admin's today, whatever the demo data gave them
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        org = db.session.get(Organization, admin.org_id)
        factories.make_activity(org, owner_id=admin.id, subject="Round tick", due_at=datetime.now(UTC))
        db.session.remove()
    browser_login(page, "admin")
    page.goto(f"{live_server}/my-day")
    toggles = page.locator(".activity-toggle")
    expect(toggles.first).to_be_visible()
    for i in range(toggles.count()):
        box = toggles.nth(i).bounding_box()
        assert abs(box["width"] - box["height"]) < 1, box
    assert page_errors == []

"""Real Chromium: Undo after a bulk delete on the deal list and after a delete in a record's timeline."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_bulk_delete_deals_and_undo_brings_both_back(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/deals?sort=name")
    rows = page.locator("#deal-table tbody tr")
    ids = [rows.nth(i).get_attribute("data-deal-id") for i in range(2)]
    for deal_id in ids:
        page.locator(f"#deal-{deal_id} input[data-select-row]").check()
    page.locator("[data-bulk-bar]").get_by_role("button", name="Delete").click()
    toast = page.locator(".toast", has_text="Deleted 2 deals.")
    toast.wait_for()
    for deal_id in ids:
        page.locator(f"#deal-{deal_id}").wait_for(state="detached")
    toast.get_by_role("button", name="Undo").click()
    page.locator(".toast", has_text="Restored 2 deals.").wait_for()
    expect(page.locator("#deal-table tbody tr").first).to_have_attribute("data-deal-id", ids[0])
    expect(page.locator(f"#deal-{ids[1]}")).to_be_visible()
    assert page_errors == []


def test_delete_in_a_timeline_and_undo(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/activities?view=all")
    link = page.locator("#activity-table a.activity-link[href^='/contacts/']").first
    link.click()
    item = page.locator("#activity-timeline .timeline-item").first
    item.wait_for()
    item_id, subject = item.get_attribute("id"), item.locator("strong").first.inner_text()
    item.get_by_role("button", name=f"Delete {subject}").click()
    toast = page.locator(".toast", has_text=f"Deleted “{subject}”.")
    toast.wait_for()
    # activities-changed: the timeline reloads itself without the item.
    page.locator(f"#{item_id}").wait_for(state="detached")
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(f"#{item_id} strong").first).to_have_text(subject)
    assert page_errors == []


def test_delete_an_activity_row_and_undo_puts_it_back_in_place(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/activities?view=all")
    row = page.locator("#activity-table tbody tr.activity-row").nth(1)
    row_id = row.get_attribute("id")
    subject = row.locator("td").nth(2).locator("a").first.inner_text()  # after the select box and Done
    row.get_by_role("button", name=f"Delete {subject}").click()
    toast = page.locator(".toast", has_text=f"Deleted “{subject}”.")
    toast.wait_for()
    expect(page.locator(f"#{row_id}")).to_contain_text("was deleted")
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(f"#{row_id} td").nth(2)).to_contain_text(subject)
    expect(page.locator("#activity-table tbody tr").nth(1)).to_have_attribute("id", row_id)
    assert page_errors == []

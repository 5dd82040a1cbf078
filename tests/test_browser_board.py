"""Real Chromium as a manager: drag a card across columns, see the headers change, reload; move by keyboard."""

import re

import pytest

from tests.browser_support import drag_card

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _count(column) -> int:
    return int(column.locator("[data-count]").inner_text())


def _open_columns(page):
    return [c for c in page.locator(".board-column:not([data-stage-won]):not([data-stage-lost])").all()]


def test_drag_card_to_another_column_and_move_by_keyboard(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/deals/board")

    columns = _open_columns(page)
    source = next(c for c in columns if c.locator("[data-deal-id]").count() > 0)
    target = next(c for c in columns if c != source)
    source_id, target_id = source.get_attribute("data-stage-id"), target.get_attribute("data-stage-id")
    before_source, before_target = _count(source), _count(target)
    card = source.locator("[data-deal-id]").first
    deal_id = card.get_attribute("data-deal-id")

    assert drag_card(page, card, target) == 200
    header = page.locator(f"#stage-header-{target_id} [data-count]")
    page.wait_for_function(
        "([id, n]) => document.querySelector(`#stage-header-${id} [data-count]`).textContent.trim() === String(n)",
        arg=[target_id, before_target + 1],
    )
    assert header.inner_text() == str(before_target + 1)
    assert page.locator(f"#stage-header-{source_id} [data-count]").inner_text() == str(before_source - 1)

    page.reload()
    saved = page.locator(f'.board-column[data-stage-id="{target_id}"] [data-deal-id="{deal_id}"]')
    assert saved.count() == 1

    # The keyboard way: focus "Move to…", pick a stage in the dialog, confirm with Enter.
    card = page.locator(f'[data-deal-id="{deal_id}"]')
    card.locator("[data-move-open]").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#move-dialog")
    assert dialog.is_visible()
    assert page.evaluate("document.activeElement.id") == "move-dialog-stage"
    page.locator("#move-dialog-stage").select_option(source_id)
    with page.expect_response(re.compile(r"/deals/[0-9a-f-]+/move")) as moved:
        page.keyboard.press("Tab")  # to "Move"
        page.keyboard.press("Enter")
    assert moved.value.status == 200
    assert page.locator(f'.board-column[data-stage-id="{source_id}"] [data-deal-id="{deal_id}"]').count() == 1
    page.reload()
    assert page.locator(f'.board-column[data-stage-id="{source_id}"] [data-deal-id="{deal_id}"]').count() == 1
    assert page.locator(f"#stage-header-{source_id} [data-count]").inner_text() == str(before_source)
    assert page_errors == []


def test_failed_move_puts_the_card_back_with_a_toast(page, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/deals/board")
    columns = _open_columns(page)
    source = next(c for c in columns if c.locator("[data-deal-id]").count() > 0)
    target = next(c for c in columns if c != source)
    source_id = source.get_attribute("data-stage-id")
    card = source.locator("[data-deal-id]").first
    deal_id = card.get_attribute("data-deal-id")
    page.evaluate(f"document.getElementById('deal-card-{deal_id}').setAttribute('data-version', '999')")  # stale
    card.locator("[data-move-open]").focus()
    page.keyboard.press("Enter")
    page.locator("#move-dialog-stage").select_option(target.get_attribute("data-stage-id"))
    with page.expect_response(re.compile(r"/deals/[0-9a-f-]+/move")) as moved:
        page.locator("[data-move-confirm]").click()
    assert moved.value.status == 409
    page.locator(".toast-error", has_text="changed by someone else").wait_for()
    assert page.locator(f'.board-column[data-stage-id="{source_id}"] [data-deal-id="{deal_id}"]').count() == 1


def test_reorder_stages_by_drag(page, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/pipelines")
    stages = page.locator(".pipeline-settings").first.locator(".stage-item")
    ids = [s.get_attribute("data-stage-id") for s in stages.all()]
    first = stages.nth(0).locator(".stage-name").bounding_box()
    second = stages.nth(1).locator(".stage-name").bounding_box()
    with page.expect_response(re.compile(r"/stages/reorder")) as reordered:
        page.mouse.move(first["x"] + 5, first["y"] + 5)
        page.mouse.down()
        page.mouse.move(first["x"] + 10, first["y"] + 15, steps=5)
        page.mouse.move(second["x"] + 5, second["y"] + second["height"] - 2, steps=15)
        page.mouse.up()
    assert reordered.value.status == 200
    page.reload()
    stages = page.locator(".pipeline-settings").first.locator(".stage-item")
    assert [s.get_attribute("data-stage-id") for s in stages.all()] == [ids[1], ids[0], *ids[2:]]


def test_delete_a_card_and_undo_puts_it_back_in_its_column(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/deals/board")
    column = next(c for c in _open_columns(page) if c.locator("[data-deal-id]").count() > 0)
    stage_id, before = column.get_attribute("data-stage-id"), _count(column)
    card = column.locator("[data-deal-id]").first
    deal_id, name = card.get_attribute("data-deal-id"), card.get_attribute("aria-label")

    card.get_by_role("button", name=f"Delete {name}").click()
    toast = page.locator(".toast", has_text="Deleted 1 deal.")
    toast.wait_for()
    page.locator(f'[data-deal-id="{deal_id}"]').wait_for(state="detached")
    column = page.locator(f'.board-column[data-stage-id="{stage_id}"]')
    assert _count(column) == before - 1

    toast.get_by_role("button", name="Undo").click()
    page.locator(f'.board-column[data-stage-id="{stage_id}"] [data-deal-id="{deal_id}"]').wait_for()
    assert _count(page.locator(f'.board-column[data-stage-id="{stage_id}"]')) == before
    assert page_errors == []

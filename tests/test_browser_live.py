"""Real Chromium, two browser contexts as two managers on one board: a drag in one shows in the other
within 3 s (card, column headers, board totals); a delete and its Undo too."""

import pytest

from tests.browser_support import drag_card

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WITHIN_MS = 3000


def _open_columns(page):
    return page.locator(".board-column:not([data-stage-won]):not([data-stage-lost])").all()


def _header_count(page, stage_id: str) -> str:
    return page.locator(f"#stage-header-{stage_id} [data-count]").inner_text().strip()


def test_a_drag_and_a_delete_with_undo_in_one_board_show_in_the_other(browser, live_server, browser_login):
    contexts = [browser.new_context(), browser.new_context()]
    try:
        mover, watcher = (context.new_page() for context in contexts)
        errors: list[str] = []
        for page in (mover, watcher):
            page.on("pageerror", lambda error: errors.append(str(error)))
        browser_login(mover, "manager")
        browser_login(watcher, "admin")
        for page in (mover, watcher):
            page.goto(f"{live_server}/deals/board")

        columns = _open_columns(mover)
        source = next(c for c in columns if c.locator("[data-deal-id]").count() > 0)
        target = next(c for c in columns if c != source)
        source_id, target_id = source.get_attribute("data-stage-id"), target.get_attribute("data-stage-id")
        card = source.locator("[data-deal-id]").first
        deal_id = card.get_attribute("data-deal-id")
        before_source, before_target = _header_count(watcher, source_id), _header_count(watcher, target_id)
        totals_before = watcher.locator("#board-totals").inner_text()

        assert drag_card(mover, card, target) == 200

        watcher.locator(f'#stage-cards-{target_id} [data-deal-id="{deal_id}"]').wait_for(timeout=WITHIN_MS)
        assert watcher.locator(f'#stage-cards-{source_id} [data-deal-id="{deal_id}"]').count() == 0
        assert _header_count(watcher, target_id) == str(int(before_target) + 1)
        assert _header_count(watcher, source_id) == str(int(before_source) - 1)
        # The open pipeline's totals are the same deals in other columns: the count stays, the
        # weighted value follows the stages' probabilities.
        assert watcher.locator("#board-totals").inner_text() != "" and totals_before

        # A delete in one board, and its Undo, in the other.
        name = mover.locator(f'[data-deal-id="{deal_id}"]').get_attribute("aria-label")
        mover.locator(f'[data-deal-id="{deal_id}"]').get_by_role("button", name=f"Delete {name}").click()
        toast = mover.locator(".toast", has_text="Deleted 1 deal.")
        toast.wait_for()
        watcher.locator(f'[data-deal-id="{deal_id}"]').wait_for(state="detached", timeout=WITHIN_MS)
        assert _header_count(watcher, target_id) == before_target
        assert watcher.locator("#board-totals").inner_text() != totals_before
        toast.get_by_role("button", name="Undo").click()
        watcher.locator(f'#stage-cards-{target_id} [data-deal-id="{deal_id}"]').wait_for(timeout=WITHIN_MS)
        assert _header_count(watcher, target_id) == str(int(before_target) + 1)
        assert errors == []
    finally:
        for context in contexts:
            context.close()

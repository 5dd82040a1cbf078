"""Real Chromium on live streams (crm_web/live_stream.py): two managers on one board of an app that
offers a stream (Redis of the test's own). An idle open board asks nothing at all; a drag in one board
shows in the other within 3 s, the other asking once, when its stream tells it."""

from __future__ import annotations

import re
import threading
import time

import pytest
from werkzeug.serving import make_server

from crm_web.config import cache_settings
from crm_web.extensions import db
from crm_web.services import seeding
from tests.browser_support import drag_card
from tests.conftest import build_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WITHIN_MS = 3000
POLLS = re.compile(r"/live/deals\?")


@pytest.fixture
def stream_server(tmp_path, private_redis):
    application = build_app(
        f"sqlite:///{tmp_path / 'stream.sqlite3'}",
        REDIS_URL=private_redis.url,
        LIVE_STREAM=True,
        RATELIMIT_STORAGE_URI="memory://",
        **cache_settings(private_redis.url),
    )
    with application.app_context():
        org, _ = seeding.ensure_demo_org()
        seeding.Seeder(org, seed=7).run(companies=5, contacts=10, leads=2, deals=12, activities=5)
        db.session.remove()
    server = make_server("127.0.0.1", 0, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    with application.app_context():
        db.engine.dispose()


def _sign_in(page, url: str, role: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=email]", f"{role}@example.com")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(url) + r"/(my-day)?$"))


def _header_count(page, stage_id: str) -> str:
    return page.locator(f"#stage-header-{stage_id} [data-count]").inner_text().strip()


def test_a_streamed_board_asks_only_when_told_and_shows_a_drag_in_another(browser, stream_server):
    contexts = [browser.new_context(), browser.new_context()]
    try:
        mover, watcher = (context.new_page() for context in contexts)
        errors: list[str] = []
        polls: list[float] = []
        for page in (mover, watcher):
            page.on("pageerror", lambda error: errors.append(str(error)))
        watcher.on("request", lambda request: polls.append(time.monotonic()) if POLLS.search(request.url) else None)
        _sign_in(mover, stream_server, "manager")
        _sign_in(watcher, stream_server, "admin")
        mover.goto(f"{stream_server}/deals/board")
        with watcher.expect_response(re.compile(r"/live/stream$")) as opened:
            watcher.goto(f"{stream_server}/deals/board")
        assert opened.value.status == 200
        assert watcher.locator('meta[name="crm-live-stream"]').count() == 1

        # Open and idle: after the one question it asks when its stream opens, it asks nothing more
        # (polling would ask every 2 s).
        watcher.wait_for_timeout(1000)
        asked_while_opening = len(polls)
        watcher.wait_for_timeout(4500)
        assert len(polls) == asked_while_opening

        columns = mover.locator(".board-column:not([data-stage-won]):not([data-stage-lost])").all()
        source = next(c for c in columns if c.locator("[data-deal-id]").count() > 0)
        target = next(c for c in columns if c != source)
        source_id, target_id = source.get_attribute("data-stage-id"), target.get_attribute("data-stage-id")
        card = source.locator("[data-deal-id]").first
        deal_id = card.get_attribute("data-deal-id")
        before_target = _header_count(watcher, target_id)
        assert drag_card(mover, card, target) == 200

        watcher.locator(f'#stage-cards-{target_id} [data-deal-id="{deal_id}"]').wait_for(timeout=WITHIN_MS)
        assert watcher.locator(f'#stage-cards-{source_id} [data-deal-id="{deal_id}"]').count() == 0
        assert _header_count(watcher, target_id) == str(int(before_target) + 1)
        assert 1 <= len(polls) - asked_while_opening <= 2  # told once (a second ask only if one was in flight)
        assert errors == []
    finally:
        for context in contexts:
            context.close()

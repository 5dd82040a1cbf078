"""Live pages (services/live.py, views/live.py): an idle poll costs no SQL statement; a change reaches
the board (cards, headers, totals), lists (a quiet bar) and detail pages ("Changed by X"); never
another organisation's; across processes sharing Redis; and through Redis going away and back."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from flask import request_started

from crm_web.auth import SESSION_SEEN
from crm_web.extensions import db
from crm_web.services.base import Actor
from crm_web.services.board import BoardService
from crm_web.services.contacts import ContactService
from crm_web.services.deals import DealService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS, CSRFClient, build_app


def _stamp(html: str) -> tuple[str, str]:
    match = re.search(r'data-live-stamp="([^"]*)" data-live-count="(\d+)"', html)
    assert match, "the page does not poll"
    return match.group(1), match.group(2)


@pytest.fixture
def board_setup(org, users):
    pipeline = factories.make_pipeline(org, is_default=True)
    stages = factories.stages_of(pipeline)
    factories.make_deal(org, stage=stages[0], name="First", value=Decimal("100"))
    return pipeline, stages


def _open_board(client, pipeline) -> str:
    html = client.get(f"/deals/board?pipeline={pipeline.id}").get_data(as_text=True)
    stamp, count = _stamp(html)
    return f"/live/deals?s={stamp}&n={count}&board=1&pipeline={pipeline.id}"


def test_an_idle_board_costs_no_statement_and_a_move_reaches_it(client, login, users, board_setup, count_queries):
    pipeline, stages = board_setup
    login("manager")
    poll = _open_board(client, pipeline)
    first = client.get(poll)  # the first poll loads the user once and remembers the organisation
    assert first.status_code == 204
    for _ in range(3):
        with count_queries() as q:
            response = client.get(poll)
        assert response.status_code == 204 and q.count == 0, q
    # Another manager moves the deal and adds one: the next poll brings cards, headers and totals.
    deal = factories.make_deal(users["manager"].org, stage=stages[1], name="Second", value=Decimal("250"))
    moved = BoardService(Actor.of(users["admin"])).move(deal.id, stage_id=stages[2].id)
    assert moved.to_stage.id == stages[2].id
    response = client.get(poll)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    new_stamp = response.headers["X-Live-Stamp"]
    assert new_stamp and new_stamp not in poll
    assert f'id="stage-cards-{stages[2].id}" hx-swap-oob="innerHTML"' in html
    cards = html.split(f'id="stage-cards-{stages[2].id}"')[1].split("</div>\n")[0]
    assert "Second" in html and f'id="deal-card-{deal.id}"' in cards
    assert f'id="stage-header-{stages[2].id}" hx-swap-oob="true"' in html
    assert 'id="board-totals" hx-swap-oob="true"' in html and "<strong>2</strong> deals" in html
    # Current again: back to nothing at all.
    with count_queries() as q:
        response = client.get(re.sub(r"s=[^&]*", f"s={new_stamp}", poll))
    assert response.status_code == 204 and q.count == 0


def test_a_delete_and_its_undo_reach_the_board(client, login, users, org, board_setup):
    pipeline, stages = board_setup
    login("manager")
    poll = _open_board(client, pipeline)
    deal = factories.make_deal(org, stage=stages[0], name="Doomed")
    stamp = client.get(poll).headers["X-Live-Stamp"]
    poll = re.sub(r"s=[^&]*", f"s={stamp}", poll)
    service = DealService(Actor.of(users["admin"]))
    service.delete_many([deal.id])
    response = client.get(poll)
    assert response.status_code == 200 and "Doomed" not in response.get_data(as_text=True)
    poll = re.sub(r"s=[^&]*", f"s={response.headers['X-Live-Stamp']}", poll)
    service.restore_many([deal.id])
    response = client.get(poll)
    assert response.status_code == 200 and "Doomed" in response.get_data(as_text=True)


def test_another_organisations_changes_never_reach_a_board(
    app, client, login, users, org, other_org, board_setup, count_queries
):
    """Listen as B while A changes things: B's polls stay idle, and B's board never shows A's deals."""
    b_user = factories.make_user(other_org, role="manager")
    b_pipeline = factories.make_pipeline(other_org, is_default=True)
    login(b_user)
    poll = _open_board(client, b_pipeline)
    assert client.get(poll).status_code == 204
    pipeline, stages = board_setup
    as_a = Actor.of(users["admin"])
    deal = DealService(as_a).create(name="Secret of A", stage_id=stages[0].id)
    BoardService(as_a).move(deal.id, stage_id=stages[1].id)
    DealService(as_a).delete_many([deal.id])
    with count_queries() as q:
        response = client.get(poll)
    assert response.status_code == 204 and q.count == 0
    # Even a forced refresh (a stale stamp) renders B's own board only.
    response = client.get(re.sub(r"s=[^&]*", "s=stale", poll))
    assert response.status_code == 200 and "Secret of A" not in response.get_data(as_text=True)
    # A stamp is no key: B asking with A's board query gets B's organisation or nothing.
    response = client.get(f"/live/deals?s=stale&board=1&pipeline={pipeline.id}")
    assert response.status_code in (200, 404) and "Secret of A" not in response.get_data(as_text=True)


def test_one_board_update_serves_every_viewer_of_the_same_kind(
    client, login, users, org, other_org, board_setup, count_queries
):
    """N managers after a change cost one render; sales (who see others' cards locked), admins and
    another organisation never get it; the next change renders anew."""
    pipeline, stages = board_setup
    manager2 = factories.make_user(org, role="manager")
    factories.make_deal(org, stage=stages[0], name="Managers deal", owner_id=users["manager"].id)
    poll = f"/live/deals?s=stale&board=1&pipeline={pipeline.id}"

    def fetch(user):
        login(user)
        with count_queries() as q:
            response = client.get(poll, headers=HX)  # as static/js/live.js asks
        assert response.status_code == 200
        return response.get_data(as_text=True), q.count

    first, rendered = fetch(users["manager"])
    assert "Managers deal" in first and "data-locked" not in first
    shared, cost = fetch(manager2)
    assert shared == first and cost == LOGIN_STATEMENTS < rendered  # no statement beyond loading the user
    as_sales, sales_cost = fetch(users["sales"])
    assert "data-locked" in as_sales and sales_cost > LOGIN_STATEMENTS  # rendered for them, not the managers' copy
    _, admin_cost = fetch(users["admin"])
    assert admin_cost > LOGIN_STATEMENTS
    assert fetch(users["sales"])[1] == LOGIN_STATEMENTS  # the same sales user again: their own copy
    factories.make_deal(org, stage=stages[0], name="Later deal")
    fresh, fresh_cost = fetch(manager2)
    assert "Later deal" in fresh and fresh_cost > LOGIN_STATEMENTS
    login(factories.make_user(other_org, role="manager"))  # the same board query from another organisation
    response = client.get(poll, headers=HX)
    assert response.status_code == 404 and "Managers deal" not in response.get_data(as_text=True)


def test_lists_get_a_quiet_bar_and_the_viewers_own_change_none(client, login, users, org):
    viewer = login("manager")
    html = client.get("/contacts").get_data(as_text=True)
    stamp, count = _stamp(html)
    poll = f"/live/contacts?s={stamp}&n={count}"
    assert client.get(poll).status_code == 204
    as_other = Actor.of(users["admin"])
    for name in ("Ann", "Bea", "Cy"):
        ContactService(as_other).create(first_name=name, last_name="Doe")
    response = client.get(poll)
    assert response.status_code == 200 and "3 new changes" in response.get_data(as_text=True)
    # The viewer's own single change: nothing to say, the page counts from there.
    stamp = response.headers["X-Live-Stamp"]
    html = client.get("/contacts").get_data(as_text=True)
    stamp, count = _stamp(html)
    ContactService(Actor.of(viewer)).create(first_name="Mine", last_name="Own")
    response = client.get(f"/live/contacts?s={stamp}&n={count}")
    assert response.status_code == 204 and response.headers["X-Live-Count"] == str(int(count) + 1)


def test_a_detail_page_says_who_changed_its_record(client, login, users, org):
    login("manager")
    contact = factories.make_contact(org, first_name="Zed")
    other = factories.make_contact(org, first_name="Other")
    html = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    stamp, count = _stamp(html)
    poll = f"/live/contacts?id={contact.id}&s={stamp}&n={count}"
    as_admin = Actor.of(users["admin"])
    ContactService(as_admin).update(other.id, first_name="Otto")
    response = client.get(poll)
    assert response.status_code == 204  # another record changed
    ContactService(as_admin).update(contact.id, first_name="Zoe")
    response = client.get(poll)
    assert response.status_code == 200
    assert f"Changed by {users['admin'].name} a moment ago" in response.get_data(as_text=True)
    assert client.get("/live/contacts?id=not-a-uuid&s=x").status_code == 400
    assert client.get("/live/nothing?s=x").status_code == 404


def test_an_idle_poll_is_answered_in_front_of_the_app(app, client, login, board_setup):
    """views/live.py IdleChecks: a current stamp never reaches Flask (no request, no hook), and its 204
    carries the headers every response does; anything it cannot vouch for goes on to the app."""
    pipeline, _ = board_setup
    login("manager")
    poll = _open_board(client, pipeline)
    started = []
    with request_started.connected_to(lambda sender, **extra: started.append(1), app):
        # The page recorded the organisation in the session: even its first poll never reaches Flask.
        assert client.get(poll).status_code == 204
        assert len(started) == 0
        response = client.get(poll)
        assert response.status_code == 204 and len(started) == 0
        assert response.headers["X-Live-Stamp"] in poll and response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        # A stale stamp, a bad id, a NUL and a POST are the app's to answer.
        assert client.get(re.sub(r"s=[^&]*", "s=stale", poll)).status_code == 200
        assert client.get(poll + "&id=not-a-uuid").status_code == 400
        assert client.get(poll + "&x=%00").status_code == 400
        assert len(started) == 3


def test_an_idle_poll_of_a_session_that_is_over_goes_to_the_app(app, client, login, board_setup):
    """An idle or forged session gets no 204 in front of the app: the app ends it and refuses the poll."""
    pipeline, _ = board_setup
    login("manager")
    poll = _open_board(client, pipeline)
    assert client.get(poll).status_code == 204
    assert client.get(poll).status_code == 204
    with client.session_transaction() as session:
        session[SESSION_SEEN] -= app.config["SESSION_IDLE_MINUTES"] * 60 + 1
    response = client.get(poll, headers=HX)
    assert response.status_code == 401 and "HX-Redirect" in response.headers
    login("manager")
    poll = _open_board(client, pipeline)
    assert client.get(poll).status_code == 204
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value[:-2] + "xx")  # a broken signature
    response = client.get(poll, headers=HX)
    assert response.status_code == 401


def test_a_poll_without_a_session_is_refused(client, users):
    response = client.get("/live/deals?s=x", headers={"HX-Request": "true"})
    assert response.status_code == 401 and "HX-Redirect" in response.headers


# --- several processes, and Redis going away -------------------------------------------------


def _app(tmp_path, redis_url: str):
    from crm_web.config import cache_settings

    application = build_app(
        f"sqlite:///{tmp_path / 'live.sqlite3'}",
        REDIS_URL=redis_url,
        RATELIMIT_STORAGE_URI="memory://",
        CACHE_BREAKER_SECONDS=0.2,
        **cache_settings(redis_url),
    )
    application.test_client_class = CSRFClient
    return application


def test_two_processes_share_changes_through_redis_and_survive_it_going_away(tmp_path, private_redis):
    """Two app instances (as two gunicorn processes) on one database and one private Redis: a change
    made through one reaches a board polled through the other; with Redis stopped pages still answer
    and polls stay quiet; once it is back the board catches up with what changed meanwhile."""
    import time

    from crm_web.services.cache import breaker

    first = _app(tmp_path, private_redis.url)
    with first.app_context():
        org = factories.make_org("two")
        manager = factories.make_user(org, role="manager")
        pipeline = factories.make_pipeline(org, is_default=True)
        stages = factories.stages_of(pipeline)
        ids = {"org": org.id, "user": manager.id, "pipeline": pipeline.id, "stage": stages[0].id, "to": stages[1].id}
        manager_id = manager.get_id()
        db.session.remove()
    second = _app(tmp_path, private_redis.url)  # the same files: a second process's view
    client = second.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = manager_id
        session["_fresh"] = True

    def as_manager():
        from crm_web.models import User

        return Actor.of(db.session.get(User, ids["user"]))

    def open_board():
        html = client.get(f"/deals/board?pipeline={ids['pipeline']}").get_data(as_text=True)
        stamp, count = _stamp(html)
        return f"/live/deals?s={stamp}&n={count}&board=1&pipeline={ids['pipeline']}"

    with second.app_context():
        poll = open_board()
        assert client.get(poll).status_code == 204
    with first.app_context():
        DealService(as_manager()).create(name="Through one", stage_id=ids["stage"])
        db.session.remove()
    with second.app_context():
        response = client.get(poll)
        assert response.status_code == 200 and "Through one" in response.get_data(as_text=True)
        poll = re.sub(r"s=[^&]*", f"s={response.headers['X-Live-Stamp']}", poll)

    private_redis.stop()
    try:
        with first.app_context():
            DealService(as_manager()).create(name="While away", stage_id=ids["stage"])
            db.session.remove()
        with second.app_context():
            assert client.get(f"/deals/board?pipeline={ids['pipeline']}").status_code == 200
            response = client.get(poll)
            assert response.status_code == 204 and response.headers["X-Live-Stamp"] == "offline"
            poll = re.sub(r"s=[^&]*", "s=offline", poll)  # what the page keeps (static/js/live.js)
            assert client.get(poll).status_code == 204
    finally:
        private_redis.start()
    time.sleep(0.25)  # the breaker's cool-down (CACHE_BREAKER_SECONDS)
    with second.app_context():
        response = client.get(poll)
        assert response.status_code == 200 and "While away" in response.get_data(as_text=True)
        breaker.reset()
    for application in (first, second):
        with application.app_context():
            db.session.remove()
            db.engine.dispose()

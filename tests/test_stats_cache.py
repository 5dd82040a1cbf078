"""Cached statistics (services/stats/cache.py): served from the cache until any write path changes
what they count, whichever service, bulk statement or trash action made the change."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm_web.models import utcnow
from crm_web.services.activities import ActivityService
from crm_web.services.board import BoardService
from crm_web.services.deals import DealService
from crm_web.services.leads import LeadService
from crm_web.services.pipelines import PipelineService
from crm_web.services.stats.dashboard import DashboardService
from crm_web.services.trash import TrashRef, TrashService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


@pytest.fixture
def board(org, users):
    pipeline = factories.make_pipeline(org, name="Sales")
    lead_in, proposal, negotiation, won, lost = factories.stages_of(pipeline)
    deals = [
        factories.make_deal(org, stage=lead_in, value=Decimal("1000"), owner_id=users["sales"].id),
        factories.make_deal(org, stage=proposal, value=Decimal("2000"), owner_id=users["sales"].id),
    ]
    trashed = factories.make_deal(
        org, stage=negotiation, value=Decimal("500"), deleted_at=utcnow(), deleted_by_id=users["admin"].id
    )
    activity = factories.make_activity(
        org, subject="Call back", type="call", status="pending", deleted_at=utcnow(), deleted_by_id=users["admin"].id
    )
    return {
        "pipeline": pipeline,
        "stages": (lead_in, proposal, negotiation, won, lost),
        "deals": deals,
        "trashed": trashed,
        "activity": activity,
    }


def numbers(actor):
    service = DashboardService(actor)
    return service.dashboard(service.resolve_scope("all"))


def _changes(actor, board):
    lead_in, _proposal, negotiation, _won, _ = board["stages"]
    first, second = board["deals"]
    deals = DealService(actor)
    return {
        "board move": lambda: BoardService(deals.actor).move(first.id, stage_id=negotiation.id),
        "won": lambda: deals.mark_won(second.id),
        "edit": lambda: deals.update(first.id, value=Decimal("1500")),
        "bulk delete": lambda: deals.delete_many([first.id, second.id]),
        "trash restore": lambda: TrashService(actor).restore([TrashRef("deal", board["trashed"].id)]),
        "trash purge": lambda: TrashService(actor).purge([TrashRef("deal", board["trashed"].id)]),
        "stage probability": lambda: PipelineService(actor).stage_update(
            lead_in.id, name=lead_in.name, probability=55, is_won=False, is_lost=False
        ),
        "activity restored": lambda: TrashService(actor).restore([TrashRef("activity", board["activity"].id)]),
        "new activity": lambda: ActivityService(actor).create(subject="Demo", type="meeting", status="pending"),
        "lead converted": lambda: LeadService(actor).convert(
            factories.make_lead(actor_org(actor), first_name="Ada", last_name="Lovelace", company_name="Engines").id,
            create_deal=True,
            deal_value=Decimal("700"),
        ),
    }


def actor_org(actor):
    from crm_web.extensions import db
    from crm_web.models import Organization

    return db.session.get(Organization, actor.org_id)


def test_dashboard_is_served_from_the_cache(actor, board, count_queries):
    first = numbers(actor)
    with count_queries() as q:
        assert numbers(actor) == first
    assert q.count == 1, q  # the owner switcher's user list; every panel comes from the cache


@pytest.mark.parametrize(
    "change",
    [
        "board move",
        "won",
        "edit",
        "bulk delete",
        "trash restore",
        "trash purge",
        "stage probability",
        "activity restored",
        "new activity",
        "lead converted",
    ],
)
def test_any_change_to_what_the_dashboard_counts_makes_it_stale(actor, board, count_queries, change):
    before = numbers(actor)
    _changes(actor, board)[change]()
    with count_queries() as q:
        after = numbers(actor)
    assert q.count > 1, "recomputed, not served stale"
    if change != "trash purge":  # a trashed deal never counted; purging it is still a write to deals
        assert after != before


def test_another_organisations_change_keeps_the_cache(actor, board, other_org, count_queries):
    numbers(actor)
    stranger = factories.actor_for(factories.make_user(other_org, role="admin"))
    factories.make_deal(other_org, value=Decimal("10"))
    ActivityService(stranger).create(subject="Elsewhere", type="task", status="pending")
    with count_queries() as q:
        numbers(actor)
    assert q.count == 1, q


def test_a_rolled_back_write_does_not_invalidate(actor, board, count_queries):
    from crm_web.extensions import db

    numbers(actor)
    board["deals"][0].value = Decimal("1")
    db.session.flush()
    db.session.rollback()
    with count_queries() as q:
        numbers(actor)
    assert q.count == 1, q


def test_board_headers_are_cached_for_the_whole_pipeline_only(client, login, board, count_queries):
    login("manager")
    client.get("/deals/board")
    with count_queries() as warm:
        html = client.get("/deals/board", headers=HX).get_data(as_text=True)
    assert "3,000" in html or "3000" in html  # total of the pipeline's two live deals
    with count_queries() as filtered:
        client.get("/deals/board?f=value.greaterThan.1500", headers=HX)
    assert len(filtered.statements) == len(warm.statements) + 1  # a filtered board aggregates its own set
    assert warm.count == 2 + LOGIN_STATEMENTS, warm  # cards and their tags; headers from the cache


def test_board_headers_follow_a_move(client, login, board):
    login("manager")
    _, _proposal, negotiation, _, _ = board["stages"]
    client.get("/deals/board")
    deal = board["deals"][0]
    assert (
        client.post(
            f"/deals/{deal.id}/move", data={"stage_id": str(negotiation.id), "version": deal.version}, headers=HX
        ).status_code
        == 200
    )
    html = client.get("/deals/board", headers=HX).get_data(as_text=True)
    header = html.split(f'id="stage-header-{negotiation.id}"', 1)[1].split("</header>", 1)[0]
    assert "<strong data-count>1</strong>" in header


def test_a_deal_change_keeps_the_activity_stats_and_an_activity_change_keeps_the_deal_numbers(
    actor, board, count_queries
):
    numbers(actor)
    _lead_in, _, negotiation, _, _ = board["stages"]
    BoardService(actor).move(board["deals"][0].id, stage_id=negotiation.id)
    with count_queries() as q:
        numbers(actor)
    assert [s for s in q.statements if "FROM activity_tallies" in s] == [], q  # only the deal rollup ran again
    assert any("FROM deal_tallies" in s for s in q.statements), q
    ActivityService(actor).create(subject="Demo", type="meeting", status="pending")
    with count_queries() as q:
        numbers(actor)
    assert [s for s in q.statements if "FROM deal_tallies" in s] == [], q
    assert any("FROM activity_tallies" in s for s in q.statements), q


def test_activity_stats_expire_with_the_clock_but_deal_numbers_only_with_writes(
    app, actor, board, count_queries, monkeypatch
):
    """ "Overdue" moves with the clock, so the activity stats expire after ACTIVITY_STATS_CACHE_TIMEOUT; the deal
    numbers change only with writes (and the date, in their keys), so they live for DEAL_STATS_CACHE_TIMEOUT,
    a far longer safety net. The test cache (cachelib's SimpleCache) reads a clock the test moves."""
    now = [1_000_000.0]
    monkeypatch.setattr("cachelib.simple.time", lambda: now[0])
    activity_timeout = app.config["ACTIVITY_STATS_CACHE_TIMEOUT"]
    deal_timeout = app.config["DEAL_STATS_CACHE_TIMEOUT"]
    assert deal_timeout >= 60 * activity_timeout
    numbers(actor)
    now[0] += activity_timeout - 1
    with count_queries() as within:
        numbers(actor)
    assert not [s for s in within.statements if "_tallies" in s], within  # nothing expired yet
    now[0] += 2
    with count_queries() as minute:
        numbers(actor)
    now[0] += deal_timeout
    with count_queries() as hour:
        numbers(actor)
    assert any("FROM activity_tallies" in s for s in minute.statements), minute
    assert [s for s in minute.statements if "FROM deal_tallies" in s] == [], minute
    assert any("FROM deal_tallies" in s for s in hour.statements), hour  # the safety net does expire


# --- refresh ahead ---------------------------------------------------------------------------------


@pytest.fixture
def spies(monkeypatch):
    """How many times the dashboard's cached numbers were computed, by kind."""
    from crm_web.services.stats import activities, deals

    calls = {"activities": 0, "rollup": 0}

    def counting(kind, original):
        def wrapper(*args, **kwargs):
            calls[kind] += 1
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(activities, "compute_activity_stats", counting("activities", activities.compute_activity_stats))
    monkeypatch.setattr(deals, "rollup", counting("rollup", deals.rollup))
    return calls


def _later(monkeypatch, seconds: float) -> None:
    """The refresh-ahead clock moved on (not the cache's own: the entries are still there)."""
    import time

    from crm_web.services.stats import cache as stats_cache

    monkeypatch.setattr(stats_cache, "_now", lambda: time.time() + seconds)


def _due(app) -> float:
    """Seconds after which every dashboard entry (the hour-long deal numbers too) is due for a refresh."""
    return app.config["DEAL_STATS_CACHE_TIMEOUT"] * (1 - app.config["STATS_REFRESH_AHEAD"]) + 1


def _dashboard(client):
    response = client.get("/dashboard?owner=all")
    assert response.status_code == 200
    return response


def test_a_due_entry_is_served_and_refreshed_once_after_the_response(
    app, client, login, board, count_queries, spies, monkeypatch
):
    """An entry in the last part of its life is served as it is (the viewer's request costs the warm
    budget: no recomputation in it), and recomputed once after that response has been sent."""
    login("manager")
    _dashboard(client).close()
    with count_queries() as warm:
        _dashboard(client).close()
    assert spies == {"activities": 1, "rollup": 1}

    _later(monkeypatch, _due(app))
    with count_queries() as due:
        response = _dashboard(client)
    assert due.count == warm.count, due  # served from the cache: the refresh is not the viewer's
    assert spies == {"activities": 1, "rollup": 1}
    with count_queries() as after:
        response.close()  # the server has sent the response
    assert spies == {"activities": 2, "rollup": 2}
    assert after.count > 0, after

    with count_queries() as next_view:  # fresh again: nobody refreshes it
        _dashboard(client).close()
    assert next_view.count == warm.count, next_view
    assert spies == {"activities": 2, "rollup": 2}


def test_concurrent_viewers_of_a_due_entry_refresh_it_once(app, client, login, board, users, spies, monkeypatch):
    login("manager")
    _dashboard(client).close()
    _later(monkeypatch, _due(app))
    other = app.test_client()
    with other.session_transaction() as session:
        session["_user_id"] = users["admin"].get_id()
        session["_fresh"] = True
    first, second = _dashboard(client), _dashboard(other)  # both in flight with the due entries
    first.close()
    second.close()
    assert spies == {"activities": 2, "rollup": 2}  # the cold view, then one refresh each


def test_a_change_is_seen_at_once_while_a_refresh_is_pending(app, client, actor, login, board, spies, monkeypatch):
    """Refresh ahead never delays a change: the change starts a new generation, the next viewer
    computes it, and the pending refresh of the old generation's entry shows nobody anything old."""
    login("manager")
    _dashboard(client).close()
    _later(monkeypatch, _due(app))
    pending = _dashboard(client)  # schedules a refresh of the entries about to be outdated
    first, _second = board["deals"]
    DealService(actor).update(first.id, value=Decimal("1500"))
    assert "1,500" in _dashboard(client).get_data(as_text=True)
    pending.close()
    assert "1,500" in _dashboard(client).get_data(as_text=True)


def test_refresh_ahead_through_redis(tmp_path, redis_url, monkeypatch):
    """The same with the cache in Redis (the one each node of a cluster shares): one refresh for two
    viewers, run after the response, and the entries come back fresh."""
    import redis as redis_client

    from crm_web.config import cache_settings
    from crm_web.extensions import db
    from tests.conftest import CSRFClient, build_app

    redis_client.Redis.from_url(redis_url).flushdb()
    application = build_app(f"sqlite:///{tmp_path / 'ahead.sqlite3'}", **cache_settings(redis_url))
    application.test_client_class = CSRFClient
    try:
        with application.app_context():
            org = factories.make_org("ahead")
            admin = factories.make_user(org, role="admin")
            pipeline = factories.make_pipeline(org)
            factories.make_deal(org, pipeline=pipeline, value=Decimal("700"), owner_id=admin.id)
            factories.make_activity(org, owner_id=admin.id)
            admin_id = admin.get_id()
            db.session.remove()
        clients = [application.test_client(), application.test_client()]
        for each in clients:
            with each.session_transaction() as session:
                session["_user_id"] = admin_id
                session["_fresh"] = True
        calls: list[str] = []
        from crm_web.services.stats import activities

        original = activities.compute_activity_stats
        monkeypatch.setattr(
            activities, "compute_activity_stats", lambda *a, **k: calls.append("computed") or original(*a, **k)
        )
        _dashboard(clients[0]).close()
        assert calls == ["computed"]
        _later(monkeypatch, application.config["ACTIVITY_STATS_CACHE_TIMEOUT"] - 1)
        responses = [_dashboard(each) for each in clients]
        assert calls == ["computed"]  # both served from Redis
        for response in responses:
            response.close()
        assert calls == ["computed", "computed"]
        _dashboard(clients[1]).close()
        assert calls == ["computed", "computed"]
    finally:
        redis_client.Redis.from_url(redis_url).flushdb()
        with application.app_context():
            db.session.remove()
            db.engine.dispose()

"""The tallies the database keeps (migration 0010's triggers) equal the aggregates, after every kind of write.

Each scenario writes through the services (and, for bulk paths, plain statements), then compares
what the dashboard and the board read from the tallies with the same numbers aggregated from the
deals and activities themselves, for the whole team and for each owner, on both engines.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update

from crm_web.extensions import db
from crm_web.models import (
    ACTIVITY_STATUSES,
    ACTIVITY_TYPES,
    OPEN_ACTIVITY_STATUSES,
    Activity,
    ActivityDayTally,
    ActivityTally,
    Deal,
    DealTally,
    utcnow,
)
from crm_web.services.activities import ActivityService
from crm_web.services.board import BoardService
from crm_web.services.deals import DealService
from crm_web.services.pipelines import PipelineService
from crm_web.services.stats import tallies
from crm_web.services.stats.activities import compute_activity_stats
from crm_web.services.stats.deals import rollup
from crm_web.services.stats.units import day_bounds, week_bounds
from crm_web.services.trash import TrashRef, TrashService
from tests import factories
from tests.stats_oracles import forecast, pipeline_stats

TODAY = utcnow().date()
FIRST = TODAY.replace(day=1)


def _month(offset: int) -> date:
    index = FIRST.year * 12 + FIRST.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


def _deals_by_closing_month(org, owner_id, since: date) -> dict[str, dict[str, tuple[int, Decimal]]]:
    """Won and lost deals per closing month, counted from the deals (the rollup's closed_by_month)."""
    stmt = select(Deal).where(Deal.org_id == org.id, Deal.status.in_(("won", "lost")), Deal.closed_at.is_not(None))
    if owner_id is not None:
        stmt = stmt.where(Deal.owner_id == owner_id)
    found: dict[str, dict[str, tuple[int, Decimal]]] = {}
    for deal in db.session.scalars(stmt):
        if deal.closed_at.date() >= since:
            nothing = {"won": (0, Decimal(0)), "lost": (0, Decimal(0))}
            month = found.setdefault(deal.closed_at.strftime("%Y-%m"), nothing)
            count, value = month[deal.status]
            month[deal.status] = (count + 1, value + deal.value)
    return found


def assert_deal_tallies_agree(actor, org, owners) -> None:
    since = _month(-6)
    for owner_id in (None, *owners):
        rolled = rollup(
            actor,
            owner_id=owner_id,
            forecast_from=FIRST,
            forecast_until=_month(6),
            closed_since=datetime.combine(since, time.min, tzinfo=UTC),
        )
        assert rolled.pipeline_stats() == pipeline_stats(actor, owner_id=owner_id)
        expected_forecast = {
            month.month.strftime("%Y-%m"): (month.count, month.weighted, month.best_case)
            for month in forecast(actor, months=6, owner_id=owner_id, today=TODAY)
            if month.count
        }
        assert {
            month: (count, weighted.quantize(Decimal("0.01")), best.quantize(Decimal("0.01")))
            for month, (count, weighted, best) in rolled.forecast().items()
        } == expected_forecast
        assert rolled.closed_by_month() == _deals_by_closing_month(org, owner_id, since)
        open_deals = [Deal.status == "open"] + ([Deal.owner_id == owner_id] if owner_id else [])
        expected_by_stage = {}
        for pipeline in PipelineService(actor).pipeline_list():
            for stage_id, stats in BoardService(actor).column_stats(pipeline.id, open_deals).items():
                expected_by_stage[stage_id] = (stats.count, stats.total, stats.weighted.quantize(Decimal("0.01")))
        assert {
            stage_id: (count, value, weighted.quantize(Decimal("0.01")))
            for stage_id, (count, value, weighted) in rolled.open_by_stage().items()
        } == expected_by_stage
    service = DealService(actor)
    for pipeline in PipelineService(actor).pipeline_list():
        direct = BoardService(service.actor).column_stats(pipeline.id)
        from_tallies = BoardService(service.actor).stage_totals()
        for stage in pipeline.stages:
            mine, theirs = from_tallies.get(stage.id), direct.get(stage.id)
            assert (mine.count if mine else 0) == (theirs.count if theirs else 0), stage.name
            if theirs:
                assert (mine.total, mine.weighted.quantize(Decimal("0.01"))) == (
                    theirs.total,
                    theirs.weighted.quantize(Decimal("0.01")),
                ), stage.name


def assert_activity_tallies_agree(actor, org, owners) -> None:
    for owner_id in (None, *owners):
        stmt = select(Activity.status, Activity.type).where(Activity.org_id == org.id)
        if owner_id is not None:
            stmt = stmt.where(Activity.owner_id == owner_id)
        live = Counter(db.session.execute(stmt).all())  # soft-deleted rows are hidden globally
        stats = compute_activity_stats(db.session, org.id, user_id=owner_id, now=utcnow())
        assert stats["total"] == sum(live.values())
        assert stats["by_status"] == {
            key: sum(n for (s, _), n in live.items() if s == key) for key, _ in ACTIVITY_STATUSES
        }
        assert stats["by_type"] == {key: sum(n for (_, t), n in live.items() if t == key) for key, _ in ACTIVITY_TYPES}
        assert stats["open"] == sum(n for (s, _), n in live.items() if s in OPEN_ACTIVITY_STATUSES)
        assert {name: stats[name] for name in _clock_counts(org, owner_id, utcnow(), UTC)} == _clock_counts(
            org, owner_id, utcnow(), UTC
        )


@pytest.fixture
def world(org, users):
    """Two pipelines, deals of three owners in every status, with and without their own probability."""
    pipelines = [factories.make_pipeline(org), factories.make_pipeline(org, name="Renewals", is_default=False)]
    owners = [users["admin"].id, users["sales"].id, None]
    created = datetime.combine(_month(-3), time(9), tzinfo=UTC)
    deals = []
    for index in range(24):
        stage = factories.stages_of(pipelines[index % 2])[index % 5]
        status = "won" if stage.is_won else "lost" if stage.is_lost else "open"
        deals.append(
            factories.make_deal(
                org,
                stage=stage,
                status=status,
                owner_id=owners[index % 3],
                value=Decimal(f"{1000 + 37 * index}.55"),
                probability=(15 + index) if index % 4 == 0 else None,
                expected_close_date=_month(index % 8 - 1) + timedelta(days=index),
                created_at=created,
                closed_at=created + timedelta(days=3 * index) if status != "open" else None,
            )
        )
    return {"pipelines": pipelines, "deals": deals, "owners": [users["admin"].id, users["sales"].id]}


def test_a_fresh_world_agrees(actor, org, world):
    assert_deal_tallies_agree(actor, org, world["owners"])


def test_edits_and_moves_agree(actor, org, world, users):
    service = DealService(actor)
    stages = factories.stages_of(world["pipelines"][0])
    first, second, third = world["deals"][0], world["deals"][2], world["deals"][4]
    service.update(
        first.id, value=Decimal("123.45"), probability=None, expected_close_date=_month(2), owner_id=users["sales"].id
    )
    BoardService(service.actor).move(second.id, stage_id=stages[3].id)  # won now
    BoardService(service.actor).move(third.id, stage_id=stages[4].id, lost_reason="Price")  # lost now
    BoardService(service.actor).move(second.id, stage_id=stages[1].id)  # and open again
    service.create(stage_id=stages[2].id, name="New", value=Decimal("50.10"), expected_close_date=TODAY)
    assert_deal_tallies_agree(actor, org, world["owners"])


def test_trash_restore_purge_and_bulk_statements_agree(actor, org, world):
    service = DealService(actor)
    deals = world["deals"]
    service.delete(deals[0].id)
    service.delete_many([deals[1].id, deals[2].id, deals[3].id])
    service.restore(deals[0].id)
    service.restore_many([deals[1].id])
    TrashService(actor).purge([TrashRef("deal", deals[2].id)])
    db.session.execute(update(Deal).where(Deal.org_id == org.id, Deal.status == "open").values(value=Deal.value + 1))
    db.session.commit()
    assert_deal_tallies_agree(actor, org, world["owners"])


def test_a_stage_probability_change_and_a_stage_delete_agree(actor, org, world):
    stages = factories.stages_of(world["pipelines"][0])
    pipelines = PipelineService(actor)
    pipelines.stage_update(stages[1].id, name=stages[1].name, probability=65, is_won=False, is_lost=False)
    assert_deal_tallies_agree(actor, org, world["owners"])
    pipelines.stage_delete(stages[0].id, move_to_stage_id=stages[2].id)
    assert_deal_tallies_agree(actor, org, world["owners"])


def test_a_stage_deleted_under_its_deals_leaves_them_weighing_nothing(actor, org, world):
    """Outside the services (psql) a stage can go while open deals point at it: they keep counting,
    at 0 % like any deal without a stage, and the tallies still agree."""
    stage = factories.stages_of(world["pipelines"][1])[1]
    db.session.execute(
        text("DELETE FROM pipeline_stages WHERE id = :id"),
        {"id": stage.id.hex if db.engine.dialect.name == "sqlite" else stage.id},
    )
    db.session.commit()
    db.session.expire_all()
    assert_deal_tallies_agree(actor, org, world["owners"])


def test_an_edit_that_changes_nothing_counted_appends_nothing(actor, org, world):
    service = DealService(actor)
    before = db.session.scalar(select(func.count()).select_from(DealTally))
    service.update(world["deals"][1].id, name="Renamed", description="Only words changed")
    assert db.session.scalar(select(func.count()).select_from(DealTally)) == before


@pytest.mark.postgres_only  # SQLite's triggers are per row
def test_a_set_based_statement_appends_one_row_per_group_on_postgresql(actor, org, world, users):
    stage = factories.stages_of(world["pipelines"][0])[1]
    for i in range(30):
        factories.make_deal(
            org, stage=stage, name=f"Bulk {i}", value=Decimal(10), owner_id=users["sales"].id, expected_close_date=TODAY
        )
    before = db.session.scalar(select(func.count()).select_from(DealTally))
    db.session.execute(update(Deal).where(Deal.name.like("Bulk %")).values(value=Deal.value + 5))
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(DealTally)) - before == 1  # 30 deals, one group
    assert_deal_tallies_agree(actor, org, world["owners"])


def test_another_orgs_deals_never_count(actor, org, world, other_org):
    factories.make_deal(other_org, value=Decimal("99999"))
    assert_deal_tallies_agree(actor, org, world["owners"])
    assert sum(group.deals for group in tallies.deal_groups(db.session, other_org.id)) == 1


def test_folding_keeps_every_number_and_leaves_one_row_per_group(actor, org, world, monkeypatch, count_queries):
    service = DealService(actor)
    for deal in world["deals"][:8]:
        service.update(deal.id, value=deal.value + 1)
    groups_before = tallies.deal_groups(db.session, org.id)
    rows_before = db.session.scalar(select(func.count()).select_from(DealTally).where(DealTally.org_id == org.id))
    monkeypatch.setattr(tallies, "COMPACT_AFTER", 3)
    with count_queries() as folding:
        assert sorted(tallies.deal_groups(db.session, org.id), key=repr) == sorted(groups_before, key=repr)
    assert folding.count == 3, folding  # the read, then DELETE ... RETURNING and one INSERT
    rows_after = db.session.scalar(select(func.count()).select_from(DealTally).where(DealTally.org_id == org.id))
    assert rows_after == len(groups_before) < rows_before
    assert not db.session.scalar(select(func.count()).select_from(DealTally).where(DealTally.compacted.is_(False)))
    with count_queries() as reading:
        assert sorted(tallies.deal_groups(db.session, org.id), key=repr) == sorted(groups_before, key=repr)
    assert reading.count == 1, "folded rows are not folded again"
    assert_deal_tallies_agree(actor, org, world["owners"])


@pytest.mark.parametrize("months_back", [0, 2])
def test_stage_sums_are_the_groups_the_board_counts(actor, org, world, months_back, monkeypatch, count_queries):
    """tallies.stage_sums (the board's column headers) sums in SQL what folding every group of
    deal_groups by stage and currency gives, open deals and those closed since the month only; its
    read still folds appended rows."""
    since = _month(-months_back)
    expected: dict[tuple, list] = {}
    for group in tallies.deal_groups(db.session, org.id):
        closed_now = group.closed_month is not None and group.closed_month >= since
        if group.stage_id is not None and (group.status == "open" or closed_now):
            sums = expected.setdefault((group.stage_id, group.currency), [0, Decimal(0), Decimal(0)])
            for index, amount in enumerate((group.deals, group.value, group.weighted)):
                sums[index] += amount
    found = {
        (stage, currency): [n, v, w]
        for stage, currency, n, v, w in tallies.stage_sums(db.session, org.id, closed_since=since)
    }
    assert found == expected and any(n for n, _, _ in found.values())
    assert all(isinstance(v, Decimal) and v == v.quantize(Decimal("0.01")) for _, v, _ in found.values())
    every_stage = sum(group.deals for group in tallies.deal_groups(db.session, org.id) if group.stage_id is not None)
    assert sum(n for n, _, _ in found.values()) < every_stage  # deals closed before `since` are left out
    monkeypatch.setattr(tallies, "COMPACT_AFTER", 3)
    with count_queries() as folding:
        again = tallies.stage_sums(db.session, org.id, closed_since=since)
    assert folding.count == 3, folding  # the read, then DELETE ... RETURNING and one INSERT
    assert {(s, c): [n, v, w] for s, c, n, v, w in again} == expected


def test_activity_tallies_agree_after_every_kind_of_write(actor, org, users, monkeypatch):
    service = ActivityService(actor)
    owners = [users["admin"].id, users["sales"].id]
    made = [
        factories.make_activity(
            org, type=ACTIVITY_TYPES[i % 5][0], status=ACTIVITY_STATUSES[i % 4][0], owner_id=([*owners, None])[i % 3]
        )
        for i in range(15)
    ]
    assert_activity_tallies_agree(actor, org, owners)
    service.update(made[0].id, type="call", owner_id=users["sales"].id)
    service.set_completed(made[1].id, completed=True)
    service.delete(made[2].id)
    service.delete_many([made[3].id, made[4].id])
    service.restore(made[2].id)
    db.session.execute(
        update(Activity).where(Activity.org_id == org.id, Activity.type == "note").values(status="cancelled")
    )
    db.session.commit()
    assert_activity_tallies_agree(actor, org, owners)
    monkeypatch.setattr(tallies, "COMPACT_AFTER", 1)
    assert_activity_tallies_agree(actor, org, owners)  # folded on the first read, the same numbers
    appended = select(func.count()).select_from(ActivityTally).where(ActivityTally.compacted.is_(False))
    assert not db.session.scalar(appended)


def _clock_counts(org, owner_id, now: datetime, tz) -> dict[str, int]:
    """Overdue, due today and this week, completed this week, counted from the activities themselves."""
    today = day_bounds(now, tz)
    week = week_bounds(now, tz)
    stmt = select(Activity.status, Activity.due_at, Activity.completed_at).where(Activity.org_id == org.id)
    if owner_id is not None:
        stmt = stmt.where(Activity.owner_id == owner_id)
    found = {"overdue": 0, "due_today": 0, "due_this_week": 0, "completed_this_week": 0}
    for status, due, completed in db.session.execute(stmt):
        if status in OPEN_ACTIVITY_STATUSES and due is not None:
            found["overdue"] += due < now
            found["due_today"] += today[0] <= due < today[1]
            found["due_this_week"] += week[0] <= due < week[1]
        if status == "completed" and completed is not None:
            found["completed_this_week"] += week[0] <= completed < week[1]
    return found


def _assert_clock_counts(org, owners, now: datetime, tz=UTC) -> None:
    for owner_id in (None, *owners):
        stats = compute_activity_stats(db.session, org.id, user_id=owner_id, now=now, tz=tz)
        assert {name: stats[name] for name in _clock_counts(org, owner_id, now, tz)} == _clock_counts(
            org, owner_id, now, tz
        ), (owner_id, now, tz)


def test_the_clock_bound_counts_from_the_day_tallies_are_exact_after_every_kind_of_write(
    actor, org, users, monkeypatch
):
    """Overdue, due today and this week, completed this week = the whole UTC days of the range from the
    day tallies + the partial days at its ends from the activities: the same numbers as counting the
    activities, for the team and each owner, whatever the hour and the organisation's time zone."""
    service = ActivityService(actor)
    owners = [users["admin"].id, users["sales"].id]
    now = utcnow()
    midnight = datetime.combine(now.date(), time.min, tzinfo=UTC)
    moments = [
        now - timedelta(days=40),
        now - timedelta(days=6, hours=5),
        now - timedelta(days=1, minutes=1),
        midnight - timedelta(microseconds=1),  # the last instant of yesterday (UTC)
        midnight,  # the first instant of today
        now - timedelta(seconds=1),
        now + timedelta(seconds=1),
        midnight + timedelta(days=1),
        now + timedelta(days=3, hours=7),
        now + timedelta(days=9),
        None,
    ]
    made = [
        factories.make_activity(
            org,
            status=ACTIVITY_STATUSES[i % 4][0],
            owner_id=([*owners, None])[i % 3],
            due_at=moments[i % len(moments)],
            completed_at=moments[(i + 3) % len(moments)] if ACTIVITY_STATUSES[i % 4][0] == "completed" else None,
        )
        for i in range(44)
    ]
    zones = [UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]
    for tz in zones:
        _assert_clock_counts(org, owners, now, tz)
    open_ones = [a for a in made if a.status in OPEN_ACTIVITY_STATUSES]
    service.update(open_ones[0].id, due_at=now + timedelta(days=2))  # overdue -> upcoming
    service.update(open_ones[-1].id, due_at=now - timedelta(days=5), owner_id=users["sales"].id)
    service.set_completed(open_ones[1].id, completed=True)
    service.delete(open_ones[2].id)
    service.delete_many([open_ones[3].id, open_ones[4].id])
    service.restore(open_ones[2].id)
    db.session.execute(  # a bulk statement: one appended row per group it changed
        update(Activity).where(Activity.org_id == org.id, Activity.type == "note").values(status="pending")
    )
    db.session.commit()
    assert_activity_tallies_agree(actor, org, owners)
    # The clock moves: the days before and after are read from the tallies, the partial ones from the index.
    for at in (midnight, midnight + timedelta(minutes=30), midnight + timedelta(hours=23), now + timedelta(days=2)):
        for tz in zones:
            _assert_clock_counts(org, owners, at, tz)
    monkeypatch.setattr(tallies, "COMPACT_AFTER", 1)
    _assert_clock_counts(org, owners, now)  # folded on the first read, the same numbers
    appended = select(func.count()).select_from(ActivityDayTally).where(ActivityDayTally.compacted.is_(False))
    assert not db.session.scalar(appended)
    for tz in zones:
        _assert_clock_counts(org, owners, now, tz)


def test_the_day_tallies_count_only_live_open_or_completed_activities(org, users):
    """The tallies' triggers use the open statuses of the model (OPEN_ACTIVITY_STATUSES) by due day, and
    completed activities by completion day; nothing without the time, nothing trashed."""
    day = utcnow().date() - timedelta(days=3)
    at = datetime.combine(day, time(12), tzinfo=UTC)
    for status, _ in ACTIVITY_STATUSES:
        factories.make_activity(org, status=status, owner_id=users["sales"].id, due_at=at, completed_at=at)
    factories.make_activity(org, status="pending", owner_id=users["sales"].id, due_at=None)
    factories.make_activity(org, status="completed", owner_id=users["sales"].id, completed_at=None)
    trashed = factories.make_activity(org, status="pending", owner_id=users["sales"].id, due_at=at)
    trashed.deleted_at = utcnow()
    db.session.commit()
    rows = db.session.execute(
        select(
            ActivityDayTally.owner_id,
            ActivityDayTally.kind,
            ActivityDayTally.day,
            func.sum(ActivityDayTally.activities),
        )
        .where(ActivityDayTally.org_id == org.id)
        .group_by(ActivityDayTally.owner_id, ActivityDayTally.kind, ActivityDayTally.day)
        .having(func.sum(ActivityDayTally.activities) != 0)
        .order_by(ActivityDayTally.kind)
    ).all()
    assert rows == [
        (users["sales"].id, "completed", day, 1),
        (users["sales"].id, "due", day, len(OPEN_ACTIVITY_STATUSES)),
    ]

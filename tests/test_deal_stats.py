"""Deal statistics: one aggregate each, the one weighted formula (lost never counts, won counts 100 %)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm_web.services.stats.deals import rollup
from tests import factories
from tests.stats_oracles import forecast, pipeline_stats, weighted_value_of

TODAY = date(2026, 3, 15)


@pytest.fixture
def stages(org):
    return factories.stages_of(factories.make_pipeline(org))  # 10, 50, 80, won 100, lost 0


def test_formula_in_python():
    assert weighted_value_of(value=Decimal(1000), status="lost", probability=90, stage_probability=90) == 0
    assert weighted_value_of(value=Decimal(1000), status="won", probability=10, stage_probability=0) == 1000
    assert weighted_value_of(value=Decimal(1000), status="open", probability=None, stage_probability=30) == 300
    # Half up, like the SQL formula on PostgreSQL.
    assert weighted_value_of(value=Decimal("0.05"), status="open", probability=50, stage_probability=0) == Decimal(
        "0.03"
    )


def test_pipeline_stats_one_query(org, stages, actor, users, count_queries):
    created = datetime(2026, 1, 1, tzinfo=UTC)
    factories.make_deal(org, stage=stages[1], value=Decimal("1000"))  # 500 weighted
    factories.make_deal(org, stage=stages[0], value=Decimal("200"), probability=50)  # 100 weighted
    factories.make_deal(
        org,
        stage=stages[3],
        value=Decimal("3000"),
        status="won",
        created_at=created,
        closed_at=created + timedelta(days=10),
    )
    factories.make_deal(
        org,
        stage=stages[3],
        value=Decimal("1000"),
        status="won",
        created_at=created,
        closed_at=created + timedelta(days=20),
        owner_id=users["sales"].id,
    )
    factories.make_deal(org, stage=stages[4], value=Decimal("9999"), status="lost", probability=90)
    factories.make_deal(other := factories.make_org(), value=Decimal("5"))  # another org never counts
    with count_queries() as q:
        stats = pipeline_stats(actor)
    assert q.count == 3  # the oracle: the rates, the sums per currency, the average days
    assert (stats.total_count, stats.open_count, stats.won_count, stats.lost_count) == (5, 2, 2, 1)
    assert stats.open_value == Decimal("1200") and stats.won_value == Decimal("4000")
    assert stats.lost_value == Decimal("9999")
    assert stats.weighted_open_value == Decimal("600")
    assert stats.win_rate == pytest.approx(66.7)
    assert stats.average_deal_size == Decimal("2000")
    assert stats.average_days_to_close == pytest.approx(15.0)
    mine = pipeline_stats(actor, owner_id=users["sales"].id)
    assert mine.total_count == 1 and mine.won_value == 1000
    assert other is not None


def test_empty_stats(actor, org):
    stats = pipeline_stats(actor)
    assert stats.total_count == 0 and stats.win_rate == 0.0 and stats.average_days_to_close is None


def test_forecast_lost_never_adds_and_won_counts_fully(org, stages, actor, count_queries):
    in_month = TODAY.replace(day=20)
    next_month = date(2026, 4, 2)
    factories.make_deal(org, stage=stages[1], value=Decimal("1000"), expected_close_date=in_month)  # 500
    factories.make_deal(org, stage=stages[3], value=Decimal("400"), status="won", expected_close_date=in_month)
    factories.make_deal(
        org, stage=stages[4], value=Decimal("7777"), status="lost", probability=80, expected_close_date=in_month
    )
    factories.make_deal(org, stage=stages[4], value=Decimal("5000"), status="lost", expected_close_date=next_month)
    factories.make_deal(org, stage=stages[0], value=Decimal("300"), expected_close_date=date(2026, 8, 31))
    factories.make_deal(org, stage=stages[0], value=Decimal("300"), expected_close_date=date(2026, 9, 1))  # beyond
    factories.make_deal(org, stage=stages[0], value=Decimal("300"), expected_close_date=date(2026, 2, 28))  # past
    with count_queries() as q:
        rows = forecast(actor, today=TODAY)
    assert q.count == 2  # the oracle: the rates, the sums per month and currency
    assert [r.month for r in rows] == [date(2026, m, 1) for m in range(3, 9)]
    march = rows[0]
    assert march.weighted == Decimal("900") and march.best_case == Decimal("1400") and march.count == 2
    assert rows[1].weighted == 0 and rows[1].best_case == 0 and rows[1].count == 0  # only a lost deal
    assert rows[5].weighted == Decimal("30") and rows[5].best_case == Decimal("300")
    assert len(forecast(actor, months=3, today=TODAY)) == 3


@pytest.mark.parametrize("owner", ["all", "sales"])
def test_the_dashboard_rollup_agrees_with_the_per_panel_queries(org, stages, actor, users, count_queries, owner):
    """deal_stats.rollup folds into exactly what pipeline_stats() and forecast() compute, in one statement
    and the organisation's exchange rates."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    sales = users["sales"].id
    factories.make_deal(org, stage=stages[1], value=Decimal("1000"), expected_close_date=TODAY, owner_id=sales)
    factories.make_deal(
        org, stage=stages[0], value=Decimal("200.50"), probability=35, expected_close_date=date(2026, 5, 2)
    )
    factories.make_deal(
        org,
        stage=stages[3],
        value=Decimal("3000"),
        status="won",
        created_at=created,
        closed_at=created + timedelta(days=10),
        expected_close_date=TODAY,
        owner_id=sales,
    )
    factories.make_deal(
        org,
        stage=stages[3],
        value=Decimal("1000"),
        status="won",
        created_at=created,
        closed_at=created + timedelta(days=75),
    )
    factories.make_deal(org, stage=stages[3], value=Decimal("10"), status="won", closed_at=None)
    factories.make_deal(
        org,
        stage=stages[4],
        value=Decimal("9999"),
        status="lost",
        probability=90,
        closed_at=datetime(2026, 2, 3, tzinfo=UTC),
        expected_close_date=TODAY,
    )
    factories.make_deal(org, stage=stages[2], value=Decimal("70"), expected_close_date=date(2026, 12, 1))  # beyond
    owner_id = sales if owner == "sales" else None
    with count_queries() as q:
        rolled = rollup(
            actor,
            owner_id=owner_id,
            forecast_from=date(2026, 3, 1),
            forecast_until=date(2026, 9, 1),
            closed_since=datetime(2025, 10, 1, tzinfo=UTC),
        )
    assert q.count == 2
    assert rolled.pipeline_stats() == pipeline_stats(actor, owner_id=owner_id)
    by_month = rolled.forecast()
    for month in forecast(actor, owner_id=owner_id, today=TODAY):
        count, weighted, best = by_month.get(month.month.strftime("%Y-%m"), (0, Decimal(0), Decimal(0)))
        assert (count, weighted, best) == (month.count, month.weighted, month.best_case), month

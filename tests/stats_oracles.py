"""Reference oracles for the statistics: the same numbers computed the slow, obvious way (aggregating every
deal or activity). The app reads the tallies instead (crm_web/services/stats); the tests check that both
agree after every kind of write."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from crm_web.extensions import db
from crm_web.models import (
    ACTIVITY_PRIORITIES,
    ACTIVITY_STATUSES,
    OPEN_ACTIVITY_STATUSES,
    Activity,
    Deal,
    PipelineStage,
    utcnow,
)
from crm_web.services.base import Actor
from crm_web.services.currencies import Rates, Unconverted, load_rates
from crm_web.services.stats.activities import live_activities
from crm_web.services.stats.deals import ForecastMonth, PipelineStats, derive_pipeline_stats
from crm_web.services.stats.formula import weighted_value
from crm_web.services.stats.units import add_months, money


def _days_between(session: Session, start, end) -> ColumnElement:
    if session.get_bind().dialect.name == "sqlite":
        return func.julianday(end) - func.julianday(start)
    return func.extract("epoch", end - start) / 86400.0


def _month_key(session: Session, column) -> ColumnElement:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m", column)
    return func.to_char(column, "YYYY-MM")


def _scope(actor: Actor, owner_id: uuid.UUID | None, pipeline_id: uuid.UUID | None = None) -> list[ColumnElement]:
    criteria: list[ColumnElement] = [Deal.org_id == actor.org_id]
    if owner_id is not None:
        criteria.append(Deal.owner_id == owner_id)
    if pipeline_id is not None:
        criteria.append(Deal.pipeline_id == pipeline_id)
    return criteria


def _convert(rates: Rates, per_currency: dict[str, Decimal]) -> Decimal:
    """The organisation's currency: each currency's sum times its rate, rounded once; no rate, left out."""
    total = Decimal(0)
    for currency, amount in per_currency.items():
        factor = rates.factor(currency, rates.base)
        if factor is not None:
            total += money(Decimal(amount) * factor)
    return money(total)


def pipeline_stats(
    actor: Actor,
    *,
    owner_id: uuid.UUID | None = None,
    pipeline_id: uuid.UUID | None = None,
    session: Session | None = None,
) -> PipelineStats:
    """Counts and values by status (per currency, converted into the organisation's with its rates),
    weighted open value, win rate, average size and days to close: two aggregates and the rates."""
    session = session or db.session
    rates = load_rates(session, actor.org_id)
    is_open, is_won, is_lost = Deal.status == "open", Deal.status == "won", Deal.status == "lost"

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def sum_if(condition, value=Deal.value):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    rows = session.execute(
        select(
            Deal.currency,
            func.count(Deal.id),
            count_if(is_open),
            count_if(is_won),
            count_if(is_lost),
            sum_if(is_open),
            sum_if(is_won),
            sum_if(is_lost),
            sum_if(is_open, weighted_value()),
        )
        .select_from(Deal)
        .outerjoin(PipelineStage, PipelineStage.id == Deal.stage_id)
        .where(*_scope(actor, owner_id, pipeline_id))
        .group_by(Deal.currency)
    ).all()
    won_days = case(
        (and_(is_won, Deal.closed_at.is_not(None)), _days_between(session, Deal.created_at, Deal.closed_at))
    )
    avg_days = session.scalar(select(func.avg(won_days)).where(*_scope(actor, owner_id, pipeline_id)))
    total = sum(int(r[1]) for r in rows)
    open_count, won_count, lost_count = (sum(int(r[i]) for r in rows) for i in (2, 3, 4))
    open_value, won_value, lost_value, weighted = (_convert(rates, {r[0]: r[i] for r in rows}) for i in (5, 6, 7, 8))
    won_converted = sum(int(r[3]) for r in rows if rates.factor(r[0], rates.base) is not None)
    apart = tuple(
        Unconverted(r[0], int(r[1]), money(r[5] + r[6] + r[7]))
        for r in sorted(rows)
        if rates.factor(r[0], rates.base) is None and int(r[1])
    )
    return derive_pipeline_stats(
        total,
        open_count,
        won_count,
        lost_count,
        open_value,
        won_value,
        lost_value,
        weighted,
        won_value / won_converted if won_converted else None,
        avg_days,
        currency=rates.base,
        unconverted=apart,
    )


def forecast(
    actor: Actor,
    *,
    months: int = 6,
    owner_id: uuid.UUID | None = None,
    today: date | None = None,
    session: Session | None = None,
) -> list[ForecastMonth]:
    """Weighted and best-case value by expected close month (per currency, converted into the
    organisation's), this month and the next ones.

    Lost deals are excluded outright (they never add to a forecast); won deals count 100 %.
    """
    session = session or db.session
    rates = load_rates(session, actor.org_id)
    months = max(1, min(months, 24))
    first = (today or date.today()).replace(day=1)
    end = add_months(first, months)
    month = _month_key(session, Deal.expected_close_date).label("month")
    rows = session.execute(
        select(
            month,
            Deal.currency,
            func.count(Deal.id),
            func.coalesce(func.sum(weighted_value()), 0),
            func.coalesce(func.sum(Deal.value), 0),
        )
        .select_from(Deal)
        .outerjoin(PipelineStage, PipelineStage.id == Deal.stage_id)
        .where(
            *_scope(actor, owner_id),
            Deal.status != "lost",
            Deal.expected_close_date >= first,
            Deal.expected_close_date < end,
        )
        .group_by(month, Deal.currency)
    ).all()
    found: dict[str, tuple[int, Decimal, Decimal]] = {}
    for key in {r[0] for r in rows}:
        mine = [r for r in rows if r[0] == key]
        found[key] = (
            sum(int(r[2]) for r in mine),
            _convert(rates, {r[1]: r[3] for r in mine}),
            _convert(rates, {r[1]: r[4] for r in mine}),
        )
    result = []
    for offset in range(months):
        day = add_months(first, offset)
        count, weighted, best = found.get(day.strftime("%Y-%m"), (0, money(0), money(0)))
        result.append(ForecastMonth(month=day, count=count, weighted=weighted, best_case=best))
    return result


def weighted_value_of(
    *, value: Decimal, status: str, probability: int | None, stage_probability: int | None
) -> Decimal:
    """The same formula in Python, for a single deal already in memory."""
    if status == "won":
        percent = 100
    elif status == "lost":
        percent = 0
    else:
        percent = probability if probability is not None else (stage_probability or 0)
    # Half up, as PostgreSQL rounds numeric (Python's default, half even, made 0.025 -> 0.02, not 0.03).
    return (Decimal(value) * percent / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def activity_type_stats(
    actor: Actor, *, user_id: uuid.UUID | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Totals, overdue, per status and per priority of the live activities: one aggregate."""
    now = now or utcnow()
    is_open = Activity.status.in_(OPEN_ACTIVITY_STATUSES)
    columns: dict[str, Any] = {"total": func.count(), "overdue": func.count().filter(is_open, Activity.due_at < now)}
    columns |= {f"status_{key}": func.count().filter(Activity.status == key) for key, _ in ACTIVITY_STATUSES}
    columns |= {f"priority_{key}": func.count().filter(Activity.priority == key) for key, _ in ACTIVITY_PRIORITIES}
    stmt = live_activities(
        select(*(column.label(name) for name, column in columns.items())).select_from(Activity), actor.org_id, user_id
    )
    row = {name: int(value or 0) for name, value in db.session.execute(stmt).mappings().one().items()}
    return {
        "total": row["total"],
        "overdue": row["overdue"],
        "by_status": {key: row[f"status_{key}"] for key, _ in ACTIVITY_STATUSES},
        "by_priority": {key: row[f"priority_{key}"] for key, _ in ACTIVITY_PRIORITIES},
    }

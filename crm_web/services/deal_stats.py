"""Deal statistics for the board header, the dashboard and the internal API.

pipeline_stats() and forecast() aggregate the deals (any owner or pipeline); the dashboard's
rollup() reads the tallies the database keeps (services/tallies.py) instead of every deal. All use
services/forecast.py's formula: open deals count value x probability / 100, won deals 100 %, lost
deals 0 (a lost deal never adds to a forecast); tests/test_tallies.py checks they agree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from crm_web.extensions import db
from crm_web.models import Deal, PipelineStage
from crm_web.services import tallies
from crm_web.services.base import Actor
from crm_web.services.forecast import weighted_value

ZERO = Decimal("0")


@dataclass(frozen=True)
class PipelineStats:
    total_count: int
    open_count: int
    won_count: int
    lost_count: int
    open_value: Decimal
    won_value: Decimal
    lost_value: Decimal
    weighted_open_value: Decimal
    win_rate: float  # percent of closed deals that were won; 0.0 when none closed
    average_deal_size: Decimal  # average value of won deals
    average_days_to_close: float | None  # won deals, created -> closed


@dataclass(frozen=True)
class ForecastMonth:
    month: date  # the first day of the month
    count: int
    weighted: Decimal  # the formula: open x probability, won 100 %
    best_case: Decimal  # every open and won deal at full value


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


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


def pipeline_stats(
    actor: Actor,
    *,
    owner_id: uuid.UUID | None = None,
    pipeline_id: uuid.UUID | None = None,
    session: Session | None = None,
) -> PipelineStats:
    """Counts and values by status, weighted open value, win rate, average size and days to close: one query."""
    session = session or db.session
    is_open, is_won, is_lost = Deal.status == "open", Deal.status == "won", Deal.status == "lost"

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def sum_if(condition, value=Deal.value):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    won_days = case(
        (and_(is_won, Deal.closed_at.is_not(None)), _days_between(session, Deal.created_at, Deal.closed_at))
    )
    row = session.execute(
        select(
            func.count(Deal.id),
            count_if(is_open),
            count_if(is_won),
            count_if(is_lost),
            sum_if(is_open),
            sum_if(is_won),
            sum_if(is_lost),
            sum_if(is_open, weighted_value()),
            func.avg(case((is_won, Deal.value))),
            func.avg(won_days),
        )
        .select_from(Deal)
        .outerjoin(PipelineStage, PipelineStage.id == Deal.stage_id)
        .where(*_scope(actor, owner_id, pipeline_id))
    ).one()
    total, open_count, won_count, lost_count, open_value, won_value, lost_value, weighted, avg_size, avg_days = row
    return _pipeline_stats(
        total, open_count, won_count, lost_count, open_value, won_value, lost_value, weighted, avg_size, avg_days
    )


def _pipeline_stats(
    total, open_count, won_count, lost_count, open_value, won_value, lost_value, weighted, average_size, average_days
) -> PipelineStats:
    """The one place the derived numbers (win rate, rounding) are computed, whichever query counted."""
    closed = int(won_count) + int(lost_count)
    return PipelineStats(
        total_count=int(total),
        open_count=int(open_count),
        won_count=int(won_count),
        lost_count=int(lost_count),
        open_value=_money(open_value),
        won_value=_money(won_value),
        lost_value=_money(lost_value),
        weighted_open_value=_money(weighted),
        win_rate=round(100.0 * int(won_count) / closed, 1) if closed else 0.0,
        average_deal_size=_money(average_size),
        average_days_to_close=round(float(average_days), 1) if average_days is not None else None,
    )


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def forecast(
    actor: Actor,
    *,
    months: int = 6,
    owner_id: uuid.UUID | None = None,
    today: date | None = None,
    session: Session | None = None,
) -> list[ForecastMonth]:
    """Weighted and best-case value by expected close month, this month and the next ones: one query.

    Lost deals are excluded outright (they never add to a forecast); won deals count 100 %.
    """
    session = session or db.session
    months = max(1, min(months, 24))
    first = (today or date.today()).replace(day=1)
    end = _add_months(first, months)
    month = _month_key(session, Deal.expected_close_date).label("month")
    rows = session.execute(
        select(
            month,
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
        .group_by(month)
    ).all()
    found = {key: (int(count), _money(weighted), _money(best)) for key, count, weighted, best in rows}
    result = []
    for offset in range(months):
        day = _add_months(first, offset)
        count, weighted, best = found.get(day.strftime("%Y-%m"), (0, _money(0), _money(0)))
        result.append(ForecastMonth(month=day, count=count, weighted=weighted, best_case=best))
    return result


# --- the dashboard's rollup ----------------------------------------------------------------------


@dataclass(frozen=True)
class RollupGroup:
    """Deals of one stage and status, by expected-close month and by closing month (each None
    outside its window), with their count, value and weighted value."""

    stage_id: uuid.UUID | None
    status: str
    expected_month: str | None  # "YYYY-MM" within the forecast window
    closed_month: str | None  # "YYYY-MM" (UTC) within the won/lost history window
    count: int
    value: Decimal
    weighted: Decimal
    won_days: float  # created -> closed days summed over won deals with a close time
    won_timed: int  # how many won deals have a close time


@dataclass(frozen=True)
class DealRollup:
    """Every deal number of the dashboard from the scope's tallies (a few hundred rows, not every
    deal); the panels fold these groups in Python."""

    groups: tuple[RollupGroup, ...]

    def _sum(self, *, status: str | None = None) -> tuple[int, Decimal, Decimal]:
        chosen = [g for g in self.groups if status is None or g.status == status]
        return (
            sum(g.count for g in chosen),
            sum((g.value for g in chosen), ZERO),
            sum((g.weighted for g in chosen), ZERO),
        )

    def pipeline_stats(self) -> PipelineStats:
        """The same numbers as pipeline_stats() for the same scope."""
        total, _, _ = self._sum()
        open_count, open_value, weighted = self._sum(status="open")
        won_count, won_value, _ = self._sum(status="won")
        lost_count, lost_value, _ = self._sum(status="lost")
        timed = sum(g.won_timed for g in self.groups)
        return _pipeline_stats(
            total,
            open_count,
            won_count,
            lost_count,
            open_value,
            won_value,
            lost_value,
            weighted,
            won_value / won_count if won_count else None,
            sum(g.won_days for g in self.groups) / timed if timed else None,
        )

    def open_by_stage(self) -> dict[uuid.UUID | None, tuple[int, Decimal, Decimal]]:
        """Open deals per stage: (count, value, weighted value)."""
        found: dict[uuid.UUID | None, tuple[int, Decimal, Decimal]] = {}
        for g in self.groups:
            if g.status == "open":
                count, value, weighted = found.get(g.stage_id, (0, ZERO, ZERO))
                found[g.stage_id] = (count + g.count, value + g.value, weighted + g.weighted)
        return found

    def forecast(self) -> dict[str, tuple[int, Decimal, Decimal]]:
        """Open and won deals by expected-close month of the window: (count, weighted, best case)."""
        found: dict[str, tuple[int, Decimal, Decimal]] = {}
        for g in self.groups:
            if g.expected_month is not None and g.status != "lost":
                count, weighted, best = found.get(g.expected_month, (0, ZERO, ZERO))
                found[g.expected_month] = (count + g.count, weighted + g.weighted, best + g.value)
        return found

    def closed_by_month(self) -> dict[str, dict[str, tuple[int, Decimal]]]:
        """Won and lost deals by closing month of the window: {"YYYY-MM": {"won": (count, value), ...}}."""
        found: dict[str, dict[str, tuple[int, Decimal]]] = {}
        for g in self.groups:
            if g.closed_month is not None:
                month = found.setdefault(g.closed_month, {"won": (0, ZERO), "lost": (0, ZERO)})
                count, value = month[g.status]
                month[g.status] = (count + g.count, value + g.value)
        return found


def rollup(
    actor: Actor,
    *,
    owner_id: uuid.UUID | None = None,
    forecast_from: date,
    forecast_until: date,
    closed_since: datetime,
    session: Session | None = None,
) -> DealRollup:
    """The dashboard's deal numbers, from the tallies the database keeps (services/tallies.py):
    a few hundred rows instead of every deal, folded into the windows here."""
    session = session or db.session
    since = closed_since.date()
    folded: dict[tuple, list] = {}
    for group in tallies.deal_groups(session, actor.org_id, owner_id=owner_id):
        expected = group.expected_month
        closed = group.closed_month
        key = (
            group.stage_id,
            group.status,
            expected.strftime("%Y-%m") if expected and forecast_from <= expected < forecast_until else None,
            closed.strftime("%Y-%m") if closed and closed >= since else None,
        )
        sums = folded.setdefault(key, [0, ZERO, ZERO, 0.0, 0])
        for index, amount in enumerate((group.deals, group.value, group.weighted, group.won_days, group.won_timed)):
            sums[index] += amount
    return DealRollup(tuple(RollupGroup(*key, *sums) for key, sums in folded.items()))

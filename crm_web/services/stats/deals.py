"""Deal statistics of the dashboard: the rollup of the deal tallies the database keeps (tallies.py),
folded into pipeline numbers, deals per stage, the forecast and won/lost per month.

Every weighted value is formula.py's: open deals count value x probability / 100, won deals 100 %,
lost deals 0 (a lost deal never adds to a forecast). tests/stats_oracles.py computes the same numbers
by aggregating every deal; tests/test_tallies.py and tests/test_deal_stats.py check they agree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from crm_web.services.base import Actor
from crm_web.services.sql import session_or_default
from crm_web.services.stats import tallies
from crm_web.services.stats.units import ZERO, money, month_key


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


def derive_pipeline_stats(
    total: Any,
    open_count: Any,
    won_count: Any,
    lost_count: Any,
    open_value: Any,
    won_value: Any,
    lost_value: Any,
    weighted: Any,
    average_size: Any,
    average_days: Any,
) -> PipelineStats:
    """The one place the derived numbers (win rate, rounding) are computed, whichever query counted."""
    closed = int(won_count) + int(lost_count)
    return PipelineStats(
        total_count=int(total),
        open_count=int(open_count),
        won_count=int(won_count),
        lost_count=int(lost_count),
        open_value=money(open_value),
        won_value=money(won_value),
        lost_value=money(lost_value),
        weighted_open_value=money(weighted),
        win_rate=round(100.0 * int(won_count) / closed, 1) if closed else 0.0,
        average_deal_size=money(average_size),
        average_days_to_close=round(float(average_days), 1) if average_days is not None else None,
    )


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
        return derive_pipeline_stats(
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
    """The dashboard's deal numbers, from the tallies the database keeps (services/stats/tallies.py):
    a few hundred rows instead of every deal, folded into the windows here."""
    session = session_or_default(session)
    since = closed_since.date()
    folded: dict[tuple, list] = {}
    for group in tallies.deal_groups(session, actor.org_id, owner_id=owner_id):
        expected = group.expected_month
        closed = group.closed_month
        key = (
            group.stage_id,
            group.status,
            month_key(expected) if expected and forecast_from <= expected < forecast_until else None,
            month_key(closed) if closed and closed >= since else None,
        )
        sums = folded.setdefault(key, [0, ZERO, ZERO, 0.0, 0])
        for index, amount in enumerate((group.deals, group.value, group.weighted, group.won_days, group.won_timed)):
            sums[index] += amount
    return DealRollup(tuple(RollupGroup(*key, *sums) for key, sums in folded.items()))

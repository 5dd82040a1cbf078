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
from crm_web.services.currencies import Amounts, Rates, Unconverted, org_rates
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
    currency: str = ""  # every value above is in it (the organisation's currency)
    unconverted: tuple[Unconverted, ...] = ()  # deals in a currency without a rate: counted, not summed


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
    *,
    currency: str = "",
    unconverted: tuple[Unconverted, ...] = (),
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
        currency=currency,
        unconverted=unconverted,
    )


# --- the dashboard's rollup ----------------------------------------------------------------------


@dataclass(frozen=True)
class RollupGroup:
    """Deals of one stage and status, by expected-close month and by closing month (each None
    outside its window), with their count, value and weighted value."""

    stage_id: uuid.UUID | None
    status: str
    currency: str
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
    deal); the panels fold these groups in Python, per currency, and convert each sum into the
    organisation's currency with its rates (services/currencies.py)."""

    groups: tuple[RollupGroup, ...]
    rates: Rates

    @property
    def currency(self) -> str:
        return self.rates.base

    def _amounts(self, groups: Any) -> Amounts:
        amounts = Amounts()
        for g in groups:
            amounts.add(g.currency, g.count, g.value, g.weighted)
        return amounts

    def pipeline_stats(self) -> PipelineStats:
        """The same numbers as pipeline_stats() for the same scope, in the organisation's currency."""
        base = self.rates.base
        every = self._amounts(self.groups).convert(self.rates, base)
        opened = self._amounts(g for g in self.groups if g.status == "open").convert(self.rates, base)
        won = self._amounts(g for g in self.groups if g.status == "won").convert(self.rates, base)
        lost = self._amounts(g for g in self.groups if g.status == "lost").convert(self.rates, base)
        won_converted = won.count - sum(u.count for u in won.unconverted)
        timed = sum(g.won_timed for g in self.groups)
        return derive_pipeline_stats(
            every.count,
            opened.count,
            won.count,
            lost.count,
            opened.value,
            won.value,
            lost.value,
            opened.weighted,
            won.value / won_converted if won_converted else None,
            sum(g.won_days for g in self.groups) / timed if timed else None,
            currency=base,
            unconverted=every.unconverted,
        )

    def open_by_stage(self) -> dict[uuid.UUID | None, tuple[int, Decimal, Decimal]]:
        """Open deals per stage: (count, value, weighted value) in the organisation's currency."""
        found: dict[uuid.UUID | None, Amounts] = {}
        for g in self.groups:
            if g.status == "open":
                found.setdefault(g.stage_id, Amounts()).add(g.currency, g.count, g.value, g.weighted)
        return {stage_id: _triple(amounts.convert(self.rates, self.rates.base)) for stage_id, amounts in found.items()}

    def forecast(self) -> dict[str, tuple[int, Decimal, Decimal]]:
        """Open and won deals by expected-close month of the window: (count, weighted, best case)."""
        found: dict[str, Amounts] = {}
        for g in self.groups:
            if g.expected_month is not None and g.status != "lost":
                found.setdefault(g.expected_month, Amounts()).add(g.currency, g.count, g.value, g.weighted)
        result = {}
        for month, amounts in found.items():
            count, value, weighted = _triple(amounts.convert(self.rates, self.rates.base))
            result[month] = (count, weighted, value)
        return result

    def closed_by_month(self) -> dict[str, dict[str, tuple[int, Decimal]]]:
        """Won and lost deals by closing month of the window: {"YYYY-MM": {"won": (count, value), ...}}."""
        found: dict[str, dict[str, Amounts]] = {}
        for g in self.groups:
            if g.closed_month is not None:
                month = found.setdefault(g.closed_month, {"won": Amounts(), "lost": Amounts()})
                month[g.status].add(g.currency, g.count, g.value)
        return {
            key: {
                status: (amounts.count, amounts.convert(self.rates, self.rates.base).value)
                for status, amounts in month.items()
            }
            for key, month in found.items()
        }


def _triple(converted: Any) -> tuple[int, Decimal, Decimal]:
    return converted.count, converted.value, converted.weighted


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
            group.currency,
            month_key(expected) if expected and forecast_from <= expected < forecast_until else None,
            month_key(closed) if closed and closed >= since else None,
        )
        sums = folded.setdefault(key, [0, ZERO, ZERO, 0.0, 0])
        for index, amount in enumerate((group.deals, group.value, group.weighted, group.won_days, group.won_timed)):
            sums[index] += amount
    return DealRollup(tuple(RollupGroup(*key, *sums) for key, sums in folded.items()), org_rates(actor.org_id, session))

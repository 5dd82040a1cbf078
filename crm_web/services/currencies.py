"""Exchange rates and sums of money: a sum never adds two currencies as one.

The organisation keeps a rate per currency (models/exchange_rate.py: one unit is worth `rate` units
of its default currency, with the day it was set). Every sum of deal values is kept per currency
(the deal tallies are keyed by currency, the live aggregates group by it) and converted when it is
read: each currency's sum times its rate, over the target's rate (the pipeline's currency on the
board, the organisation's elsewhere), rounded to the cent once per currency. Deals in a currency
without a rate are not summed: they are reported apart ("3 deals in JPY not converted").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, case, select
from sqlalchemy.orm import Session

from crm_web.errors import ValidationError
from crm_web.models import CURRENCIES, ExchangeRate, Organization, Role, utcnow
from crm_web.permissions import require_role
from crm_web.services.base import ActorService
from crm_web.services.cache_versions import mark_stale
from crm_web.services.history import record_change
from crm_web.services.sql import session_or_default
from crm_web.services.stats.cache import cached_stats
from crm_web.services.stats.units import ZERO, money

ONE = Decimal(1)
MAX_RATE = Decimal("10000000000")  # Numeric(18, 8)


@dataclass(frozen=True)
class Rates:
    """The organisation's default currency and what one unit of each other currency is worth in it."""

    base: str
    rates: dict[str, Decimal] = field(default_factory=dict)
    set_at: dict[str, date] = field(default_factory=dict)

    def rate(self, currency: str | None) -> Decimal | None:
        if currency == self.base:
            return ONE
        return self.rates.get(currency or "")

    def factor(self, source: str | None, target: str) -> Decimal | None:
        """What one unit of `source` is worth in `target`; None when either lacks a rate."""
        if source == target:
            return ONE
        have, want = self.rate(source), self.rate(target)
        if have is None or want is None:
            return None
        return have / want


@dataclass(frozen=True)
class Unconverted:
    """Deals of one currency that could not be converted (no rate): shown apart, never summed."""

    currency: str
    count: int
    value: Decimal

    def __str__(self) -> str:
        return f"{self.count} deal{'' if self.count == 1 else 's'} in {self.currency} not converted"


@dataclass(frozen=True)
class Converted:
    """Deals summed in one currency: every deal counted, the values of those that could be converted."""

    currency: str
    count: int = 0
    value: Decimal = ZERO
    weighted: Decimal = ZERO
    unconverted: tuple[Unconverted, ...] = ()


class Amounts:
    """Count, value and weighted value per currency, added up before any conversion."""

    def __init__(self) -> None:
        self.by_currency: dict[str, list] = {}

    def add(self, currency: str | None, count: int, value: Decimal, weighted: Decimal = ZERO) -> Amounts:
        sums = self.by_currency.setdefault(currency or "", [0, ZERO, ZERO])
        sums[0] += count
        sums[1] += Decimal(value or 0)
        sums[2] += Decimal(weighted or 0)
        return self

    def merge(self, other: Amounts) -> Amounts:
        for currency, (count, value, weighted) in other.by_currency.items():
            self.add(currency, count, value, weighted)
        return self

    @property
    def count(self) -> int:
        return sum(sums[0] for sums in self.by_currency.values())

    def convert(self, rates: Rates, target: str) -> Converted:
        """The sums in `target`, each currency converted once and rounded to the cent."""
        value, weighted, apart = ZERO, ZERO, []
        for currency, (count, amount, weight) in sorted(self.by_currency.items()):
            factor = rates.factor(currency, target)
            if factor is None:
                if count:
                    apart.append(Unconverted(currency, count, money(amount)))
                continue
            value += money(amount * factor)
            weighted += money(weight * factor)
        return Converted(target, self.count, money(value), money(weighted), tuple(apart))

    def __getstate__(self) -> dict:
        return {"by_currency": self.by_currency}

    def __setstate__(self, state: dict) -> None:
        self.by_currency = state["by_currency"]


def load_rates(session: Session, org_id: uuid.UUID) -> Rates:
    """The organisation's default currency and rates: one statement."""
    rows = session.execute(
        select(Organization.default_currency, ExchangeRate.currency, ExchangeRate.rate, ExchangeRate.set_at)
        .select_from(Organization)
        .outerjoin(ExchangeRate, ExchangeRate.org_id == Organization.id)
        .where(Organization.id == org_id)
    ).all()
    if not rows:
        return Rates(base="USD")
    base = rows[0][0]
    found = [(currency, Decimal(rate), set_at) for _, currency, rate, set_at in rows if currency and currency != base]
    return Rates(
        base=base,
        rates={currency: rate for currency, rate, _ in found},
        set_at={currency: set_at for currency, _, set_at in found},
    )


def org_rates(org_id: uuid.UUID, session: Session | None = None) -> Rates:
    """load_rates, cached (a rate or default currency change renews them, a deal write does not)."""
    return cached_stats(org_id, "rates", "rates", lambda: load_rates(session_or_default(session), org_id))


def converted(rows: Iterable[tuple], rates: Rates, target: str) -> Converted:
    """(currency, count, value[, weighted]) rows of a GROUP BY currency, converted into `target`."""
    amounts = Amounts()
    for currency, count, value, *weighted in rows:
        amounts.add(currency, int(count or 0), Decimal(value or 0), Decimal(weighted[0] or 0) if weighted else ZERO)
    return amounts.convert(rates, target)


# --- in SQL, for one-statement aggregates ----------------------------------------------------------


def org_currency_sql(org_id: uuid.UUID) -> Any:
    """The organisation's default currency, as a scalar subquery."""
    return select(Organization.default_currency).where(Organization.id == org_id).scalar_subquery()


def rate_sql(org_id: uuid.UUID, currency: Any) -> Any:
    """The rate of `currency` (a column of the enclosing query), NULL when none is set."""
    return (
        select(ExchangeRate.rate)
        .where(ExchangeRate.org_id == org_id, ExchangeRate.currency == currency)
        .scalar_subquery()
    )


def in_org_currency_sql(org_id: uuid.UUID, value: Any, currency: Any) -> ColumnElement:
    """`value` in the organisation's currency, NULL when its currency has no rate (sum() leaves it out),
    for aggregates that must stay one statement (a list column, the internal API)."""
    return case((currency == org_currency_sql(org_id), value), else_=value * rate_sql(org_id, currency))


def unconverted_sql(org_id: uuid.UUID, currency: Any) -> ColumnElement[bool]:
    """The row's currency is not the organisation's and has no rate."""
    return and_(currency != org_currency_sql(org_id), rate_sql(org_id, currency).is_(None))


# --- the settings page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RateRow:
    currency: str
    rate: Decimal | None
    set_at: date | None


class ExchangeRateService(ActorService):
    """Settings > Currencies: managers see the rates, admins set and remove them."""

    ENTITY = "exchange_rate"

    def rates(self) -> Rates:
        require_role(self.actor.role, Role.MANAGER, "see the exchange rates")
        return load_rates(self.session, self.actor.org_id)

    def rows(self) -> tuple[str, list[RateRow]]:
        """The default currency and a row per other currency (rate None: not set)."""
        rates = self.rates()
        return rates.base, [
            RateRow(currency, rates.rates.get(currency), rates.set_at.get(currency))
            for currency in CURRENCIES
            if currency != rates.base
        ]

    def set_rate(self, currency: str, rate: str | Decimal, *, set_at: date | None = None) -> ExchangeRate:
        """Admins set what one unit of `currency` is worth in the organisation's currency."""
        require_role(self.actor.role, Role.ADMIN, "change the exchange rates")
        base = self.rates().base
        errors = {}
        if currency not in CURRENCIES or currency == base:
            errors["currency"] = "Choose a currency other than the organisation's."
        try:
            value = Decimal(str(rate).strip().replace(",", ""))
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or not ZERO < value < MAX_RATE:
            errors["rate"] = "Enter a positive number."
        if errors:
            raise ValidationError("The rate was not saved", errors)
        value = value.quantize(Decimal("0.00000001"))
        row = self.session.scalar(
            select(ExchangeRate).where(ExchangeRate.org_id == self.actor.org_id, ExchangeRate.currency == currency)
        )
        before = row.rate if row else None
        if row is None:
            row = ExchangeRate(
                org_id=self.actor.org_id, currency=currency, rate=value, set_at=set_at or utcnow().date()
            )
            self.session.add(row)
        else:
            row.rate, row.set_at = value, set_at or utcnow().date()
        self.session.flush()
        record_change(
            self.session,
            self.actor,
            self.ENTITY,
            row,
            "updated",
            {"rate": [str(before) if before is not None else None, str(value)]},
        )
        self.session.commit()
        return row

    def remove_rate(self, currency: str) -> None:
        """Admins remove a rate: that currency's deals are then shown apart (no rate: nothing to do)."""
        require_role(self.actor.role, Role.ADMIN, "change the exchange rates")
        row = self.session.scalar(
            select(ExchangeRate).where(ExchangeRate.org_id == self.actor.org_id, ExchangeRate.currency == currency)
        )
        if row is not None:
            self.session.delete(row)
            self.session.commit()


def rebase(session: Session, org_id: uuid.UUID, old: str, new: str) -> None:
    """The organisation's currency changes from `old` to `new`: every rate is restated in `new`
    (the rate of `new` becomes 1, `old` gets one); without a rate for `new` none can be, so all go."""
    rows = {r.currency: r for r in session.scalars(select(ExchangeRate).where(ExchangeRate.org_id == org_id))}
    pivot = rows.pop(new, None)
    if pivot is None:
        for row in rows.values():
            session.delete(row)
    else:
        session.delete(pivot)
        for row in rows.values():
            row.rate = (row.rate / pivot.rate).quantize(Decimal("0.00000001"))
        session.add(
            ExchangeRate(
                org_id=org_id,
                currency=old,
                rate=(ONE / pivot.rate).quantize(Decimal("0.00000001")),
                set_at=pivot.set_at,
            )
        )
    mark_stale(session, org_id, "deals")
    mark_stale(session, org_id, "rates")

"""The units statistics share: money to the cent, calendar months, and the day and week around a moment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Any) -> Decimal:
    """An amount as Decimal rounded to the cent (None and 0 are 0.00)."""
    return Decimal(value or 0).quantize(CENT)


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after (or before, when negative) `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_key(day: date) -> str:
    """ "YYYY-MM", the key the month series are folded by."""
    return day.strftime("%Y-%m")


def day_bounds(now: datetime, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """Start of today and of tomorrow in the organisation's time zone, as UTC instants."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start.astimezone(UTC), datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)


def week_bounds(now: datetime, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """Monday 00:00 of this week and of next week in the organisation's time zone, as UTC instants."""
    day = now.astimezone(tz).date()
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time.min, tzinfo=tz)
    return start.astimezone(UTC), datetime.combine(monday + timedelta(days=7), time.min, tzinfo=tz).astimezone(UTC)

"""Jinja filters for display: money, dates, relative times. Pure functions, no queries."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from crm_web import clock

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "CHF": "CHF "}


def money(value: Decimal | int | float | None, currency: str = "USD", *, precise: bool = False) -> str:
    if value is None:
        return "—"
    symbol = CURRENCY_SYMBOLS.get(currency, currency + " ")
    amount = Decimal(value)
    if not precise and abs(amount) >= 1_000_000:
        return f"{symbol}{amount / 1_000_000:,.1f}M"
    if not precise and abs(amount) >= 10_000:
        return f"{symbol}{amount / 1000:,.0f}k"
    return f"{symbol}{amount:,.0f}" if amount == amount.to_integral() else f"{symbol}{amount:,.2f}"


def short_date(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%d %b %Y")


def short_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%d %b %Y %H:%M")


def time_ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    now = now or clock.now()
    seconds = int((now - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def month_label(day: date) -> str:
    """ "Mar 2026", for the month axes of the dashboard's charts."""
    return day.strftime("%b %Y")

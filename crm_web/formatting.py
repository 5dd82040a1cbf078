"""Jinja filters for display: money, dates, relative times. Pure functions, no queries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from crm_web import clock


def _choice_labels() -> dict[str, dict[str, str]]:
    from crm_web.models import (
        ACTIVITY_PRIORITIES,
        ACTIVITY_STATUSES,
        ACTIVITY_TYPES,
        CONTACT_STATUSES,
        DEAL_STATUSES,
        LEAD_SOURCES,
        LEAD_STATUSES,
        Role,
    )

    return {
        "user_role": {role.value: role.value.capitalize() for role in Role},
        "contact_status": dict(CONTACT_STATUSES),
        "lead_source": dict(LEAD_SOURCES),
        "deal_status": dict(DEAL_STATUSES),
        "lead_status": dict(LEAD_STATUSES),
        "activity_type": dict(ACTIVITY_TYPES),
        "activity_status": dict(ACTIVITY_STATUSES),
        "activity_priority": dict(ACTIVITY_PRIORITIES),
    }


CHOICES: dict[str, dict[str, str]] = {}  # kind -> {stored value: label}, filled on first use


def choice_label(value: str | None, kind: str = "") -> str:
    """What a person reads for a stored choice ("referral" -> "Referral", "in_progress" ->
    "In progress"): the model's label, else the value made readable. None and "" stay empty."""
    if not value:
        return ""
    if not CHOICES:
        CHOICES.update(_choice_labels())
    if kind:
        found = CHOICES.get(kind, {}).get(value)
    else:
        found = next((labels[value] for labels in CHOICES.values() if value in labels), None)
    return found or str(value).replace("_", " ").capitalize()


def choice_items(kind: str) -> list[tuple[str, str]]:
    """(value, label) of every choice of `kind`."""
    if not CHOICES:
        CHOICES.update(_choice_labels())
    return list(CHOICES.get(kind, {}).items())


def spreadsheet_value(value: date | datetime) -> str:
    """A date as YYYY-MM-DD, a time as "YYYY-MM-DD HH:MM:SS" in UTC (no microseconds, no offset):
    the forms spreadsheets recognise as dates and times."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


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

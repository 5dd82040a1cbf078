"""The one clock that "now", "today", "this week" and overdue are read from, and the organisation's calendar.

Stored datetimes stay UTC; only the calendar questions ("which day is it?", "where does this week start?")
are answered in the organisation's time zone. Tests set the app's `CLOCK` config to a callable returning an
aware datetime instead of sleeping.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, tzinfo

from flask import current_app, has_app_context


def now() -> datetime:
    """The current instant (aware, UTC), from the app's injected `CLOCK` when it has one."""
    if has_app_context():
        clock = current_app.config.get("CLOCK")
        if clock is not None:
            return clock().astimezone(UTC)
    return datetime.now(UTC)


def zone(name: str | None) -> tzinfo:
    """The organisation's time zone; an unknown name (never stored by the form) falls back to UTC."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def local_today(time_zone: str | None, moment: datetime | None = None) -> date:
    """Today's date where the organisation is (at `moment`, default: the clock's now)."""
    return (moment or now()).astimezone(zone(time_zone)).date()

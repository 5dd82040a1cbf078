"""The activity numbers of the dashboard: totals per status and type from the tallies the database keeps
(tallies.py), plus what moves with the clock (overdue, due today and this week, completed this week);
cached per organisation and owner until an activity changes (cache.py).

The clock-bound numbers come in one statement. Each (overdue: every open task due before now, and
they pile up; due today; due this week; completed this week) sums the whole UTC days of its range
from the day tallies the database keeps (tallies.day_sum, migration 0041) and counts the partial
days at the range's ends from the index: exact, and at most two days' index entries read whatever
the backlog."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from crm_web import clock
from crm_web.models import ACTIVITY_STATUSES, ACTIVITY_TYPES, OPEN_ACTIVITY_STATUSES, Activity, ActivityDayTally
from crm_web.services.base import Actor
from crm_web.services.sql import AnySelect, session_or_default
from crm_web.services.stats import tallies
from crm_web.services.stats.cache import cached_stats
from crm_web.services.stats.units import day_bounds, week_bounds


def _open() -> ColumnElement[bool]:
    return Activity.status.in_(OPEN_ACTIVITY_STATUSES)


def activity_stats_name(user_id: uuid.UUID | None) -> str:
    """The name of a user's (None: everyone's) activity statistics in the stats cache."""
    return f"activity_stats:{user_id or 'all'}"


def activity_stats(
    actor: Actor, *, user_id: uuid.UUID | None = None, now: datetime | None = None, session: Session | None = None
) -> dict[str, Any]:
    """Totals per status and type plus due/overdue/completed counts, cached (two small statements)."""
    return cached_stats(
        actor.org_id,
        "activities",
        activity_stats_name(user_id),
        lambda: compute_activity_stats(
            session_or_default(session), actor.org_id, user_id=user_id, now=now or clock.now(), tz=actor.zone
        ),
        # Refreshed ahead only on the request's own scoped session (a refresh runs in a session of its own).
        refresh_ahead=session is None,
    )


def compute_activity_stats(
    session: Session, org_id: uuid.UUID, *, user_id: uuid.UUID | None, now: datetime, tz: tzinfo = UTC
) -> dict[str, Any]:
    """The numbers of activity_stats, uncached; "today" and "this week" in the time zone `tz` (the
    organisation's)."""
    today_start, today_end = day_bounds(now, tz)
    week_start, week_end = week_bounds(now, tz)
    counts = tallies.activity_counts(session, org_id, owner_id=user_id)
    due, done = (Activity.due_at, _open()), (Activity.completed_at, Activity.status == "completed")
    moving = {
        "overdue": _range_count(org_id, user_id, "due", *due, None, now),
        "due_today": _range_count(org_id, user_id, "due", *due, today_start, today_end),
        "due_this_week": _range_count(org_id, user_id, "due", *due, week_start, week_end),
        "completed_this_week": _range_count(org_id, user_id, "completed", *done, week_start, week_end),
    }
    row = (
        session.execute(
            select(
                *(part.label(f"{name}_{i}") for name, parts in moving.items() for i, part in enumerate(parts)),
                tallies.days_appended(org_id).label("days_appended"),
            )
        )
        .one()
        ._mapping
    )
    if int(row["days_appended"] or 0) > tallies.COMPACT_AFTER:
        tallies.compact(session, ActivityDayTally, org_id)
    by_status = {key: sum(n for (status, _), n in counts.items() if status == key) for key, _ in ACTIVITY_STATUSES}
    return {
        "total": sum(counts.values()),
        "open": sum(by_status[status] for status in OPEN_ACTIVITY_STATUSES),
        **{name: sum(int(row[f"{name}_{i}"] or 0) for i in range(len(parts))) for name, parts in moving.items()},
        "by_status": by_status,
        "by_type": {key: sum(n for (_, type_), n in counts.items() if type_ == key) for key, _ in ACTIVITY_TYPES},
    }


def _range_count(
    org_id: uuid.UUID,
    user_id: uuid.UUID | None,
    kind: str,
    column: Any,
    condition: ColumnElement[bool],
    start: datetime | None,
    end: datetime,
) -> list[Any]:
    """Scalar subqueries whose sum is the live activities matching `condition` with `column` in
    [start, end) (start None: unbounded): the whole UTC days of the range from the day tallies of
    `kind` (the same activities, by the same column's day), the partial days at its ends from the
    index."""
    first = None if start is None else _midnight_at_or_after(start)
    last = _midnight_at_or_before(end)
    if first is not None and last <= first:  # no whole day inside: all from the index
        return [_live_count(org_id, user_id, condition, column >= start, column < end)]
    parts = [tallies.day_sum(org_id, user_id, kind, None if first is None else first.date(), last.date())]
    if start is not None and first is not None and start < first:
        parts.append(_live_count(org_id, user_id, condition, column >= start, column < first))
    if last < end:
        parts.append(_live_count(org_id, user_id, condition, column >= last, column < end))
    return parts


def _midnight_at_or_before(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time.min, tzinfo=UTC)


def _midnight_at_or_after(moment: datetime) -> datetime:
    midnight = _midnight_at_or_before(moment)
    return midnight if midnight == moment else midnight + timedelta(days=1)


def _live_count(org_id: uuid.UUID, user_id: uuid.UUID | None, *criteria: ColumnElement[bool]) -> Any:
    return (
        live_activities(select(func.count()).select_from(Activity), org_id, user_id).where(*criteria).scalar_subquery()
    )


def live_activities(stmt: AnySelect, org_id: uuid.UUID, user_id: uuid.UUID | None) -> AnySelect:
    """The organisation's live activities, or one owner's."""
    stmt = stmt.where(Activity.org_id == org_id, Activity.deleted_at.is_(None))
    return stmt if user_id is None else stmt.where(Activity.owner_id == user_id)

"""The activity numbers of the dashboard: totals per status and type from the tallies the database keeps
(tallies.py), plus index-only counts of what moves with the clock (overdue, due today and this week,
completed this week); cached per organisation and owner until an activity changes (cache.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from crm_web import clock
from crm_web.models import ACTIVITY_STATUSES, ACTIVITY_TYPES, OPEN_ACTIVITY_STATUSES, Activity
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
    moving = {
        "overdue": (_open(), Activity.due_at < now),
        "due_today": (_open(), Activity.due_at >= today_start, Activity.due_at < today_end),
        "due_this_week": (_open(), Activity.due_at >= week_start, Activity.due_at < week_end),
        "completed_this_week": (
            Activity.status == "completed",
            Activity.completed_at >= week_start,
            Activity.completed_at < week_end,
        ),
    }
    row = (
        session.execute(
            select(*(_live_count(org_id, user_id, *criteria).label(name) for name, criteria in moving.items()))
        )
        .mappings()
        .one()
    )
    by_status = {key: sum(n for (status, _), n in counts.items() if status == key) for key, _ in ACTIVITY_STATUSES}
    return {
        "total": sum(counts.values()),
        "open": sum(by_status[status] for status in OPEN_ACTIVITY_STATUSES),
        **{name: int(row[name] or 0) for name in moving},
        "by_status": by_status,
        "by_type": {key: sum(n for (_, type_), n in counts.items() if type_ == key) for key, _ in ACTIVITY_TYPES},
    }


def _live_count(org_id: uuid.UUID, user_id: uuid.UUID | None, *criteria: ColumnElement[bool]) -> Any:
    return (
        live_activities(select(func.count()).select_from(Activity), org_id, user_id).where(*criteria).scalar_subquery()
    )


def live_activities(stmt: AnySelect, org_id: uuid.UUID, user_id: uuid.UUID | None) -> AnySelect:
    """The organisation's live activities, or one owner's."""
    stmt = stmt.where(Activity.org_id == org_id, Activity.deleted_at.is_(None))
    return stmt if user_id is None else stmt.where(Activity.owner_id == user_id)

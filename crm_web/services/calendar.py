"""The calendar of activities: a week or a month of due activities in the organisation's time zone,
the user's own or (managers and admins) the team's, narrowed by the activity list's filter; and
rescheduling one by moving it to another day or hour (the version check and Undo of every edit).

A calendar is one SELECT, grouped into days and hours in Python: the statement count does not grow
with the number of activities or days. A range holds at most CALENDAR_LIMIT activities; more are
counted, up to the lists' count bound (LIST_COUNT_BOUND, services/pagination: a big organisation's
busy month is "more than 10,000", not a count of every entry), and said. Inside the statement the
shown activities' ids are cut first, on the activities table alone (the live (org_id, due_at, ...)
index, counted by a subquery), and only those rows are read and joined to their owner: a busy
month's team view holds thousands of activities, and joining all of them before the cut cost more
than the page. An item is the few columns it shows (ShownActivity), not an ORM object: building
hundreds of mapped objects, every column converted, cost more than the statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import Any

from sqlalchemy import select

from crm_web import clock
from crm_web.errors import PermissionDenied, ValidationError
from crm_web.models import OPEN_ACTIVITY_STATUSES, Activity, Role, User
from crm_web.permissions import can
from crm_web.services.activities import ActivityService
from crm_web.services.pagination import bounded_count, count_bound
from crm_web.services.stats.units import add_months

MODES = ("week", "month")
WHO = ("me", "team")
CALENDAR_LIMIT = 500
HOURS = tuple(range(24))
# ShownActivity's fields, in order (its owner's name follows).
SHOWN_COLUMNS = (
    Activity.id,
    Activity.type,
    Activity.subject,
    Activity.status,
    Activity.due_at,
    Activity.version,
    Activity.owner_id,
)


def local_start(day: date, tz: tzinfo) -> datetime:
    """Midnight starting `day` in the organisation's time zone, as a UTC instant."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ShownActivity:
    """What a calendar item shows of its activity; `owner_id` is what permissions.can reads."""

    id: uuid.UUID
    type: str
    subject: str
    status: str
    due_at: datetime
    version: int
    owner_id: uuid.UUID | None
    owner_name: str | None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ACTIVITY_STATUSES


@dataclass
class CalendarItem:
    activity: ShownActivity
    local: datetime  # the due time in the organisation's time zone
    overdue: bool
    movable: bool  # the user may reschedule it (a sales user only their own)

    @property
    def completed(self) -> bool:
        return self.activity.status == "completed"

    @property
    def cancelled(self) -> bool:
        return self.activity.status == "cancelled"


@dataclass
class CalendarDay:
    day: date
    in_range: bool  # a month view's leading and trailing days of the neighbouring months are not
    is_today: bool
    items: list[CalendarItem] = field(default_factory=list)

    def at(self, hour: int) -> list[CalendarItem]:
        """The day's items due in that hour: the week view asks for each of the 24 hours of each day,
        so the items are grouped by hour once (after the calendar is built), not scanned 24 times."""
        return self._by_hour.get(hour, [])

    @cached_property
    def _by_hour(self) -> dict[int, list[CalendarItem]]:
        grouped: dict[int, list[CalendarItem]] = {}
        for item in self.items:
            grouped.setdefault(item.local.hour, []).append(item)
        return grouped


@dataclass
class Calendar:
    mode: str
    who: str
    anchor: date
    start: date
    end: date  # exclusive
    today: date
    days: list[CalendarDay]
    total: int  # activities in the range (may exceed the ones shown), at most the count bound
    more: bool = False  # the range holds more than `total` activities (the count stopped at its bound)

    @property
    def weeks(self) -> list[list[CalendarDay]]:
        return [self.days[i : i + 7] for i in range(0, len(self.days), 7)]

    @property
    def shown(self) -> int:
        return sum(len(d.items) for d in self.days)

    @property
    def previous(self) -> date:
        return self.anchor - timedelta(days=7) if self.mode == "week" else add_months(self.anchor.replace(day=1), -1)

    @property
    def next(self) -> date:
        return self.anchor + timedelta(days=7) if self.mode == "week" else add_months(self.anchor.replace(day=1), 1)

    @property
    def title(self) -> str:
        if self.mode == "month":
            return self.anchor.strftime("%B %Y")
        last = self.end - timedelta(days=1)
        return f"{self.start:%d %b} – {last:%d %b %Y}"


def calendar_range(mode: str, anchor: date) -> tuple[date, date]:
    """[start, end) of the view: a Monday-to-Sunday week, or the whole weeks covering the month."""
    if mode == "week":
        start = anchor - timedelta(days=anchor.weekday())
        return start, start + timedelta(days=7)
    first = anchor.replace(day=1)
    start = first - timedelta(days=first.weekday())
    after = add_months(first, 1)
    end = after + timedelta(days=(7 - after.weekday()) % 7)
    return start, end


class CalendarService(ActivityService):
    """The calendar reads activities like the list (the same filter) and writes through the same update."""

    def calendar(
        self,
        *,
        mode: str = "week",
        anchor: date | None = None,
        who: str = "me",
        filter_spec: Any = None,
        now: datetime | None = None,
    ) -> Calendar:
        """The activities due in the week or month around `anchor`: mine, or the team's (managers)."""
        if mode not in MODES or who not in WHO:
            raise ValidationError("Unknown calendar view.", {"mode": "Choose week or month."})
        if who == "team" and not self.actor.has_role(Role.MANAGER):
            raise PermissionDenied("Only managers and admins see the team's calendar.")
        now = now or clock.now()
        tz = self.actor.zone
        today = self.actor.today(now)
        anchor = anchor or today
        start, end = calendar_range(mode, anchor)
        criteria = [Activity.due_at >= local_start(start, tz), Activity.due_at < local_start(end, tz)]
        if who == "me":
            criteria.append(Activity.owner_id == self.actor.user_id)
        clause = self.filter_clause(filter_spec, now=now)
        if clause is not None:
            criteria.append(clause)
        # The range's count rides on every row (a scalar subquery, run once), so a full range costs no
        # second statement; the ids stop at the cut in index order (a window count would read them all).
        order = (Activity.due_at, Activity.id)
        bound = count_bound()
        total_in_range = bounded_count(self.scoped(select(Activity.id)).where(*criteria), bound)
        shown = (
            self.scoped(select(Activity.id)).where(*criteria).order_by(*order).limit(CALENDAR_LIMIT).subquery("shown")
        )
        stmt = (
            self.scoped(select(*SHOWN_COLUMNS, User.name, total_in_range.label("total")))
            .join(shown, shown.c.id == Activity.id)
            .outerjoin(User, User.id == Activity.owner_id)
        )
        rows = self.session.execute(stmt.order_by(*order)).all()
        counted = int(rows[0][-1]) if rows else 0
        total = min(counted, bound)
        days = [
            CalendarDay(
                day=start + timedelta(days=n),
                in_range=mode == "week" or (start + timedelta(days=n)).month == anchor.month,
                is_today=start + timedelta(days=n) == today,
            )
            for n in range((end - start).days)
        ]
        by_day = {d.day: d for d in days}
        for row in rows:
            activity = ShownActivity(*row[:-1])
            local = activity.due_at.astimezone(tz)
            overdue = activity.is_open and activity.due_at < now
            movable = can(self.actor, "change", activity)
            by_day[local.date()].items.append(CalendarItem(activity, local, overdue, movable))
        return Calendar(
            mode=mode,
            who=who,
            anchor=anchor,
            start=start,
            end=end,
            today=today,
            days=days,
            total=total,
            more=counted > bound,
        )

    def reschedule(
        self, activity_id: uuid.UUID, *, due_at: datetime, expected_version: int | None
    ) -> tuple[Activity, datetime | None]:
        """Move an activity to another due time (a drag on the calendar, or its Undo): refused when it
        changed since the page showed it. Returns the activity and its previous due time."""
        previous = self.session.scalar(self.scoped(select(Activity.due_at)).where(Activity.id == activity_id))
        activity = self.update(activity_id, expected_version=expected_version, due_at=due_at)
        return activity, previous


def due_at_from(day: date, clock_time: time, tz: tzinfo) -> datetime:
    """A local day and time in the organisation's zone as a UTC instant."""
    return datetime.combine(day, clock_time, tzinfo=tz).astimezone(UTC)

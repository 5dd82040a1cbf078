"""My day: one user's working page. Their open activities due today or overdue (and today's done
ones), their open deals that are rotting or expected to close this week, and the records someone
else recently assigned to them.

Three statements whatever the numbers: one joined SELECT of the activities, one of the deals (with
their stage, whose rotting limit decides), and one UNION ALL over the record types of the history
entries that gave the user a record. Each part shows at most MY_DAY_LIMIT rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, literal, or_, select, union_all

from crm_web import clock
from crm_web.entities import ENTITIES
from crm_web.extensions import db
from crm_web.models import OPEN_ACTIVITY_STATUSES, Activity, Deal, PipelineStage, RecordHistory
from crm_web.services.activities import LINK_NAMES
from crm_web.services.base import Actor
from crm_web.services.calendar import local_start
from crm_web.services.rotting import days_in_stage, past_rotting_limit, rotting_limits, rotting_sql

MY_DAY_LIMIT = 50
RECENT_DAYS = 7
# The record types that have an owner and a detail (or edit) page, in the order the page names them.
ASSIGNABLE = ("deal", "lead", "contact", "company", "activity")


@dataclass(frozen=True)
class DayActivity:
    activity: Activity
    overdue: bool


@dataclass(frozen=True)
class DayDeal:
    deal: Deal
    stage: str
    days_in_stage: int | None
    rotting: bool
    closing_this_week: bool


@dataclass(frozen=True)
class Assigned:
    kind: str
    id: uuid.UUID
    label: str
    at: datetime


@dataclass(frozen=True)
class MyDay:
    today: Any
    activities: list[DayActivity]
    deals: list[DayDeal]
    assigned: list[Assigned]

    @property
    def overdue_count(self) -> int:
        return sum(1 for a in self.activities if a.overdue)


class MyDayService:
    """Everyone's own day (no one sees another user's here)."""

    def __init__(self, actor: Actor):
        self.actor = actor
        self.session = db.session

    def my_day(self, *, now: datetime | None = None) -> MyDay:
        now = now or clock.now()
        tz = self.actor.zone
        today = self.actor.today(now)
        day_start, day_end = local_start(today, tz), local_start(today + timedelta(days=1), tz)
        return MyDay(
            today=today,
            activities=self._activities(now, day_start, day_end),
            deals=self._deals(now, today),
            assigned=self._assigned(now),
        )

    def _activities(self, now: datetime, day_start: datetime, day_end: datetime) -> list[DayActivity]:
        """Open ones due before tonight (overdue first, by due time), and those done that are due today."""
        is_open = Activity.status.in_(OPEN_ACTIVITY_STATUSES)
        stmt = (
            select(Activity)
            .options(*LINK_NAMES)
            .where(
                Activity.org_id == self.actor.org_id,
                Activity.owner_id == self.actor.user_id,
                Activity.due_at < day_end,
                or_(is_open, Activity.due_at >= day_start),
            )
            .order_by(Activity.due_at, Activity.id)
            .limit(MY_DAY_LIMIT)
        )
        return [
            DayActivity(a, a.is_open and a.due_at is not None and a.due_at < now)
            for a in self.session.scalars(stmt).unique()
        ]

    def _deals(self, now: datetime, today: Any) -> list[DayDeal]:
        monday = today - timedelta(days=today.weekday())
        closing = and_(Deal.expected_close_date >= monday, Deal.expected_close_date < monday + timedelta(days=7))
        rotting = rotting_sql(now)
        with_stage = (PipelineStage.id == Deal.stage_id) & (PipelineStage.org_id == Deal.org_id)
        order = (Deal.expected_close_date, Deal.stage_changed_at, Deal.id)
        # The ids first, from the owner's open deals index alone (ix_deals_org_owner_open_close_live,
        # in this order) and the few stages that rot: only the rows shown are read whole, and no
        # stage is looked up per deal the check reads.
        limits = rotting_limits(self.actor.org_id)
        shown = (
            select(Deal.id)
            .outerjoin(limits, limits.c.id == Deal.stage_id)
            .where(
                Deal.org_id == self.actor.org_id,
                Deal.owner_id == self.actor.user_id,
                Deal.status == "open",
                or_(closing, past_rotting_limit(limits, now)),
            )
            .order_by(*order)
            .limit(MY_DAY_LIMIT)
            .subquery("shown")
        )
        stmt = (
            select(Deal, PipelineStage.name, rotting.label("rotting"))
            .join(shown, shown.c.id == Deal.id)
            .outerjoin(PipelineStage, with_stage)
            .order_by(*order)
        )
        rows = []
        for deal, stage, rots in self.session.execute(stmt):
            this_week = (
                deal.expected_close_date is not None and monday <= deal.expected_close_date < monday + timedelta(days=7)
            )
            rows.append(DayDeal(deal, stage or "", days_in_stage(deal.stage_changed_at, now), bool(rots), this_week))
        return rows

    def _assigned(self, now: datetime) -> list[Assigned]:
        """Records now owned by the user that someone else created for them or handed to them lately."""
        since = now - timedelta(days=RECENT_DAYS)
        parts = []
        for kind in ASSIGNABLE:
            entity = ENTITIES[kind]
            model = entity.model
            label = entity.trash.label if entity.trash else model.id
            parts.append(
                select(
                    literal(kind).label("kind"),
                    model.id.label("id"),
                    label.label("label"),
                    RecordHistory.created_at.label("at"),
                )
                .join(model, (model.id == RecordHistory.entity_id) & (model.org_id == RecordHistory.org_id))
                .where(
                    RecordHistory.org_id == self.actor.org_id,
                    RecordHistory.entity_type == kind,
                    RecordHistory.created_at >= since,
                    RecordHistory.actor_id.is_not(None),
                    RecordHistory.actor_id != self.actor.user_id,
                    or_(RecordHistory.action == "created", RecordHistory.changes["owner_id"].as_string().is_not(None)),
                    model.owner_id == self.actor.user_id,
                    model.deleted_at.is_(None),
                )
            )
        union = union_all(*parts).subquery()
        stmt = select(union).order_by(union.c.at.desc(), union.c.id).limit(MY_DAY_LIMIT * 2)
        seen: set[uuid.UUID] = set()
        found: list[Assigned] = []
        for kind, record_id, label, at in self.session.execute(stmt):
            if record_id in seen:  # assigned twice lately: once, at the latest time
                continue
            seen.add(record_id)
            found.append(Assigned(kind, record_id, label or "", at))
        return found[:MY_DAY_LIMIT]

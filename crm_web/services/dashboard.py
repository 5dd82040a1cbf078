"""The dashboard's numbers: KPIs and chart series for one owner scope, one aggregate per panel.

Deal totals and the forecast come from services/deal_stats.py; deals by stage and won/lost per
month are computed here with services/forecast.py's weighted formula; activity numbers are
ActivityService.get_stats. The panels are cached per organisation, owner scope and day
(services/stats_cache.py: any committed change to deals, activities or pipelines makes them
stale). Cold, the whole page is at most 8 statements; warm, only the scope's user list.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select

from crm_web.errors import NotFound, PermissionDenied
from crm_web.extensions import db
from crm_web.models import ACTIVITY_STATUSES, ACTIVITY_TYPES, Deal, Pipeline, PipelineStage, Role, User, utcnow
from crm_web.services import deal_stats
from crm_web.services.activities import ActivityService
from crm_web.services.base import Actor
from crm_web.services.forecast import weighted_value
from crm_web.services.stats_cache import cached_stats

PANELS = ("kpis", "deals_by_stage", "forecast", "won_lost", "activity_charts")
HISTORY_MONTHS = 6
FORECAST_MONTHS = 6
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Scope:
    """Whose numbers: `owner_id` None means the whole team."""

    key: str  # "me", "all" or a user id
    owner_id: uuid.UUID | None
    label: str
    choices: list[tuple[str, str]] = field(default_factory=list)  # (key, label) for the switcher

    @property
    def can_switch(self) -> bool:
        return bool(self.choices)


@dataclass(frozen=True)
class StageBar:
    pipeline: str
    stage: str
    count: int
    value: Decimal
    weighted: Decimal

    @property
    def label(self) -> str:
        return self.stage


@dataclass(frozen=True)
class MonthResult:
    month: date
    won_count: int
    won_value: Decimal
    lost_count: int
    lost_value: Decimal


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


class DashboardService:
    """Dashboard numbers for one actor; sales reps see only their own, managers/admins any owner or the team."""

    def __init__(self, actor: Actor, *, today: date | None = None):
        self.actor = actor
        self.session = db.session
        self.today = today or utcnow().date()
        self._activity_stats: dict[uuid.UUID | None, dict[str, Any]] = {}

    # --- scope -------------------------------------------------------------------

    def resolve_scope(self, owner: str | None) -> Scope:
        """`owner` is "me", "all" or a user id of this organisation (anything else -> 400/404/403)."""
        me = self.actor.user_id
        if not self.actor.has_role(Role.MANAGER):
            if owner not in (None, "", "me") and owner != str(me):
                raise PermissionDenied("Only managers and admins can see other people's numbers.")
            return Scope(key="me", owner_id=me, label="My numbers")
        key = owner or "all"
        users = self.session.execute(
            select(User.id, User.name).where(User.org_id == self.actor.org_id).order_by(User.name)
        ).all()
        choices = [("me", "Me"), ("all", "Whole team")] + [(str(uid), name) for uid, name in users if uid != me]
        if key == "me":
            return Scope(key="me", owner_id=me, label="My numbers", choices=choices)
        if key == "all":
            return Scope(key="all", owner_id=None, label="Whole team", choices=choices)
        owner_id = uuid.UUID(key)  # the view validated the syntax
        names = {uid: name for uid, name in users}
        if owner_id not in names:
            raise NotFound("That user is not in your organisation.")
        if owner_id == me:
            return Scope(key="me", owner_id=me, label="My numbers", choices=choices)
        return Scope(key=key, owner_id=owner_id, label=names[owner_id], choices=choices)

    # --- panels ------------------------------------------------------------------

    def kpis(self, scope: Scope, *, won_lost: list[MonthResult] | None = None) -> dict[str, Any]:
        """Open pipeline value, weighted forecast, won this month, win rate, open and overdue tasks."""
        stats = deal_stats.pipeline_stats(self.actor, owner_id=scope.owner_id)
        this_month = (won_lost or self.won_lost(scope, months=1))[-1]
        activities = self.activity_stats(scope)
        return {
            "open_value": stats.open_value,
            "open_count": stats.open_count,
            "weighted": stats.weighted_open_value,
            "won_this_month": this_month.won_value,
            "won_this_month_count": this_month.won_count,
            "win_rate": stats.win_rate,
            "won_count": stats.won_count,
            "lost_count": stats.lost_count,
            "open_tasks": activities["open"],
            "overdue_tasks": activities["overdue"],
        }

    def deals_by_stage(self, scope: Scope) -> list[StageBar]:
        """Open deals per stage of every pipeline (empty stages included): count, value, weighted value."""
        on = [Deal.stage_id == PipelineStage.id, Deal.status == "open", Deal.deleted_at.is_(None),
              Deal.org_id == self.actor.org_id]
        if scope.owner_id is not None:
            on.append(Deal.owner_id == scope.owner_id)
        rows = self.session.execute(
            select(
                Pipeline.name, PipelineStage.name, func.count(Deal.id),
                func.coalesce(func.sum(Deal.value), 0), func.coalesce(func.sum(weighted_value()), 0),
            )
            .select_from(PipelineStage)
            .join(Pipeline, Pipeline.id == PipelineStage.pipeline_id)
            .outerjoin(Deal, and_(*on))
            .where(PipelineStage.org_id == self.actor.org_id, PipelineStage.is_won.is_(False),
                   PipelineStage.is_lost.is_(False))
            .group_by(Pipeline.id, Pipeline.position, Pipeline.name, PipelineStage.id, PipelineStage.position,
                      PipelineStage.name)
            .order_by(Pipeline.position, Pipeline.name, PipelineStage.position)
        ).all()
        return [StageBar(pipeline=p, stage=s, count=int(c), value=_money(v), weighted=_money(w))
                for p, s, c, v, w in rows]

    def forecast(self, scope: Scope) -> list[deal_stats.ForecastMonth]:
        return deal_stats.forecast(self.actor, months=FORECAST_MONTHS, owner_id=scope.owner_id, today=self.today)

    def won_lost(self, scope: Scope, *, months: int = HISTORY_MONTHS) -> list[MonthResult]:
        """Deals won and lost per month of closing, the last `months` months up to this one."""
        first = _add_months(self.today.replace(day=1), -(months - 1))
        start = datetime.combine(first, time.min, tzinfo=timezone.utc)
        month = self._month_of(Deal.closed_at).label("month")
        won, lost = Deal.status == "won", Deal.status == "lost"
        criteria = [Deal.org_id == self.actor.org_id, Deal.status.in_(("won", "lost")), Deal.closed_at >= start]
        if scope.owner_id is not None:
            criteria.append(Deal.owner_id == scope.owner_id)
        rows = self.session.execute(
            select(
                month,
                func.count().filter(won), func.coalesce(func.sum(case((won, Deal.value), else_=0)), 0),
                func.count().filter(lost), func.coalesce(func.sum(case((lost, Deal.value), else_=0)), 0),
            ).where(*criteria).group_by(month)
        ).all()
        found = {key: row for key, *row in rows}
        result = []
        for offset in range(months):
            day = _add_months(first, offset)
            won_count, won_value, lost_count, lost_value = found.get(day.strftime("%Y-%m"), (0, 0, 0, 0))
            result.append(MonthResult(month=day, won_count=int(won_count), won_value=_money(won_value),
                                      lost_count=int(lost_count), lost_value=_money(lost_value)))
        return result

    def activity_stats(self, scope: Scope) -> dict[str, Any]:
        if scope.owner_id not in self._activity_stats:
            self._activity_stats[scope.owner_id] = ActivityService(self.actor).get_stats(user_id=scope.owner_id)
        return self._activity_stats[scope.owner_id]

    def activity_charts(self, scope: Scope) -> dict[str, Any]:
        stats = self.activity_stats(scope)
        return {
            "by_type": [(label, stats["by_type"][key]) for key, label in ACTIVITY_TYPES],
            "by_status": [(label, stats["by_status"][key]) for key, label in ACTIVITY_STATUSES],
            "total": stats["total"],
        }

    def panel(self, name: str, scope: Scope) -> Any:
        if name not in PANELS:
            raise NotFound("No such dashboard panel.")
        return self._cached(f"dashboard_{name}", scope, lambda: getattr(self, name)(scope))

    def dashboard(self, scope: Scope) -> dict[str, Any]:
        """Every panel (cached); the KPIs reuse the won/lost months and the activity stats of the charts."""
        return self._cached("dashboard", scope, lambda: self._all_panels(scope))

    def _cached(self, name: str, scope: Scope, compute: Any) -> Any:
        return cached_stats(self.actor.org_id, f"{name}:{scope.owner_id or 'all'}:{self.today}", compute)

    def _all_panels(self, scope: Scope) -> dict[str, Any]:
        won_lost = self.won_lost(scope)
        return {
            "kpis": self.kpis(scope, won_lost=won_lost),
            "deals_by_stage": self.deals_by_stage(scope),
            "forecast": self.forecast(scope),
            "won_lost": won_lost,
            "activity_charts": self.activity_charts(scope),
        }

    def _month_of(self, column) -> Any:
        # closed_at is a UTC timestamp: month it in UTC on PostgreSQL whatever the session time zone.
        if self.session.get_bind().dialect.name == "sqlite":
            return func.strftime("%Y-%m", column)
        return func.to_char(func.timezone(literal_column("'UTC'"), column), "YYYY-MM")

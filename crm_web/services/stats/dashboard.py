"""The dashboard's numbers: KPIs and chart series for one owner scope.

Every deal number (KPIs, deals by stage, forecast, won/lost per month) folds the scope's deal
tallies (deals.rollup: the few hundred rows the database keeps, services/stats/tallies.py) instead
of aggregating every deal. Activity numbers are stats.activities.activity_stats (activity tallies plus
the clock-bound counts). Both are cached per organisation and scope (services/stats/cache.py: a
committed change to deals or pipelines makes the rollup stale, a change to activities the
activity stats). Cold, the page is at most 8 statements; warm, the user load and a manager's
owner list.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm_web import clock
from crm_web.errors import NotFound, PermissionDenied
from crm_web.extensions import db
from crm_web.models import ACTIVITY_STATUSES, ACTIVITY_TYPES, Role, User
from crm_web.services.base import Actor
from crm_web.services.cache import cache_prefetch
from crm_web.services.pipeline_catalog import PipelineCatalog
from crm_web.services.rotting import RottingStage, rotting_by_stage
from crm_web.services.stats import deals as deal_stats
from crm_web.services.stats.activities import activity_stats, activity_stats_name
from crm_web.services.stats.cache import cached_stats, stats_key
from crm_web.services.stats.units import ZERO, add_months, money, month_key

PANELS = ("kpis", "deals_by_stage", "rotting", "forecast", "won_lost", "activity_charts")
HISTORY_MONTHS = 6
FORECAST_MONTHS = 6


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


class DashboardService:
    """Dashboard numbers for one actor; sales reps see only their own, managers/admins any owner or the team."""

    def __init__(self, actor: Actor, *, today: date | None = None):
        self.actor = actor
        self.session = db.session
        self.today = today or actor.today()
        self._activity_stats: dict[uuid.UUID | None, dict[str, Any]] = {}
        self._rollups: dict[uuid.UUID | None, deal_stats.DealRollup] = {}

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

    def kpis(self, scope: Scope) -> dict[str, Any]:
        """Open pipeline value, weighted forecast, won this month, win rate, open and overdue tasks."""
        stats = self.rollup(scope).pipeline_stats()
        this_month = self.won_lost(scope)[-1]
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
            "currency": stats.currency,
            "unconverted": stats.unconverted,
        }

    def rollup(self, scope: Scope) -> deal_stats.DealRollup:
        """The scope's deals grouped once (cached until a deal or pipeline changes); every deal panel folds it."""
        if scope.owner_id not in self._rollups:
            first_closed = add_months(self.today.replace(day=1), -(HISTORY_MONTHS - 1))
            forecast_from = self.today.replace(day=1)
            self._rollups[scope.owner_id] = cached_stats(
                self.actor.org_id,
                "deals",
                self._rollup_name(scope),
                lambda: deal_stats.rollup(
                    self.actor,
                    owner_id=scope.owner_id,
                    forecast_from=forecast_from,
                    forecast_until=add_months(forecast_from, FORECAST_MONTHS),
                    closed_since=datetime.combine(first_closed, time.min, tzinfo=UTC),
                ),
                refresh_ahead=True,
            )
        return self._rollups[scope.owner_id]

    def deals_by_stage(self, scope: Scope) -> list[StageBar]:
        """Open deals per stage of every pipeline (empty stages included): count, value, weighted value."""
        found = self.rollup(scope).open_by_stage()
        return [
            StageBar(
                pipeline=pipeline.name, stage=stage.name, count=count, value=money(value), weighted=money(weighted)
            )
            for pipeline in PipelineCatalog(self.actor).pipeline_list()
            for stage in pipeline.stages
            if not stage.is_closed
            for count, value, weighted in [found.get(stage.id, (0, ZERO, ZERO))]
        ]

    def rotting(self, scope: Scope) -> list[RottingStage]:
        """Rotting deals per stage with a rotting limit (one GROUP BY, in the organisation's currency).
        Cached like the rollup, and per hour besides: deals start rotting as the clock moves."""
        now = clock.now()
        found = cached_stats(
            self.actor.org_id,
            "deals",
            self._rotting_name(scope, now),
            lambda: rotting_by_stage(self.session, self.actor.org_id, owner_id=scope.owner_id, now=now),
            refresh_ahead=True,
        )
        return [
            RottingStage(
                pipeline=pipeline.name,
                stage=stage.name,
                stage_id=stage.id,
                rotting_days=stage.rotting_days,
                count=count,
                value=money(value),
                unconverted=apart,
            )
            for pipeline in PipelineCatalog(self.actor).pipeline_list()
            for stage in pipeline.stages
            if stage.rotting_days is not None and not stage.is_closed
            for count, value, apart in [found.get(stage.id, (0, ZERO, 0))]
        ]

    def forecast(self, scope: Scope) -> list[deal_stats.ForecastMonth]:
        """Weighted and best-case value by expected close month, this month and the next ones."""
        found = self.rollup(scope).forecast()
        first = self.today.replace(day=1)
        result = []
        for offset in range(FORECAST_MONTHS):
            day = add_months(first, offset)
            count, weighted, best = found.get(month_key(day), (0, ZERO, ZERO))
            result.append(
                deal_stats.ForecastMonth(month=day, count=count, weighted=money(weighted), best_case=money(best))
            )
        return result

    def won_lost(self, scope: Scope) -> list[MonthResult]:
        """Deals won and lost per month of closing, the last HISTORY_MONTHS months up to this one."""
        found = self.rollup(scope).closed_by_month()
        first = add_months(self.today.replace(day=1), -(HISTORY_MONTHS - 1))
        result = []
        for offset in range(HISTORY_MONTHS):
            day = add_months(first, offset)
            month = found.get(month_key(day), {"won": (0, ZERO), "lost": (0, ZERO)})
            (won_count, won_value), (lost_count, lost_value) = month["won"], month["lost"]
            result.append(
                MonthResult(
                    month=day,
                    won_count=won_count,
                    won_value=money(won_value),
                    lost_count=lost_count,
                    lost_value=money(lost_value),
                )
            )
        return result

    def activity_stats(self, scope: Scope) -> dict[str, Any]:
        if scope.owner_id not in self._activity_stats:
            self._activity_stats[scope.owner_id] = activity_stats(self.actor, user_id=scope.owner_id)
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
        return getattr(self, name)(scope)

    def _rollup_name(self, scope: Scope) -> str:
        return f"deal_rollup:{scope.owner_id or 'all'}:{self.today}"

    @staticmethod
    def _rotting_name(scope: Scope, now: datetime) -> str:
        return f"rotting:{scope.owner_id or 'all'}:{now:%Y-%m-%dT%H}"

    def prefetch(self, scope: Scope) -> None:
        """Every cached entry the panels read, in one round trip to the cache instead of one each."""
        org_id = self.actor.org_id
        cache_prefetch(
            stats_key(org_id, "deals", self._rollup_name(scope)),
            stats_key(org_id, "deals", self._rotting_name(scope, clock.now())),
            stats_key(org_id, "activities", activity_stats_name(scope.owner_id)),
            PipelineCatalog(self.actor).list_key(),
        )

    def dashboard(self, scope: Scope) -> dict[str, Any]:
        """Every panel: the deal panels fold one (cached) rollup, the KPIs share the charts' activity stats."""
        self.prefetch(scope)
        return {
            "kpis": self.kpis(scope),
            "deals_by_stage": self.deals_by_stage(scope),
            "rotting": self.rotting(scope),
            "forecast": self.forecast(scope),
            "won_lost": self.won_lost(scope),
            "activity_charts": self.activity_charts(scope),
        }

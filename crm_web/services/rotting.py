"""Deal rotting: how many whole days a deal has been in its stage, and whether that is longer than the
stage's "rotting after N days" (pipeline_stages.rotting_days; only open deals in an open stage rot).

The same rule three ways, kept equal by tests: in Python for cards and rows (`days_in_stage`,
StageInfo.rots), as SQL for the filter fields and the dashboard (`days_in_stage_sql`, `rotting_sql`),
on both engines. "Now" is the app clock's (crm_web/clock.py), bound as a parameter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Subquery
from sqlalchemy.sql.functions import FunctionElement

from crm_web import clock
from crm_web.models import Deal, PipelineStage
from crm_web.models.base import UTCDateTime
from crm_web.services.currencies import in_org_currency_sql, unconverted_sql

SECONDS_PER_DAY = 86400


def days_in_stage(entered: datetime | None, now: datetime | None = None) -> int | None:
    """Whole days since `entered` (None when the deal has no stage time)."""
    if entered is None:
        return None
    return max(0, int(((now or clock.now()) - entered).total_seconds()) // SECONDS_PER_DAY)


class _DaysSince(FunctionElement[int]):
    """Whole days from a datetime column to a bound instant; each engine has its own date arithmetic."""

    type = Integer()
    inherit_cache = True
    name = "days_since"


@compiles(_DaysSince, "postgresql")
def _days_since_pg(element: _DaysSince, compiler: Any, **kw: Any) -> str:
    column, now = list(element.clauses)
    return (
        f"CAST(floor(extract(epoch FROM ({compiler.process(now, **kw)} - {compiler.process(column, **kw)}))"
        f" / {SECONDS_PER_DAY}) AS INTEGER)"
    )


@compiles(_DaysSince, "sqlite")
def _days_since_sqlite(element: _DaysSince, compiler: Any, **kw: Any) -> str:
    column, now = list(element.clauses)
    # Whole seconds first (julianday is a float: three days can come out as 2.99999...), then
    # integer division.
    return (
        f"(CAST(round((julianday({compiler.process(now, **kw)}) - julianday({compiler.process(column, **kw)}))"
        f" * {SECONDS_PER_DAY}) AS INTEGER) / {SECONDS_PER_DAY})"
    )


def days_in_stage_sql(now: datetime | None = None) -> ColumnElement[int]:
    """Deal.stage_changed_at as whole days before `now` (NULL when the deal has no stage time)."""
    return _DaysSince(Deal.stage_changed_at, literal(now or clock.now(), UTCDateTime()))


def rotting_sql(now: datetime | None = None) -> ColumnElement[bool]:
    """An open deal in an open stage with a rotting limit, longer in it than the limit; the query must
    join PipelineStage on Deal.stage_id (or use it inside Deal.stage.has())."""
    return and_(
        Deal.status == "open",
        PipelineStage.rotting_days.is_not(None),
        PipelineStage.is_won.is_(False),
        PipelineStage.is_lost.is_(False),
        days_in_stage_sql(now) > PipelineStage.rotting_days,
    )


def rotting_limits(org_id: Any) -> Subquery:
    """The organisation's stages that rot (open, with a limit): (id, rotting_days). An open deal is
    rotting when `past_rotting_limit` holds after an outer join of this on Deal.stage_id. A handful
    of rows, read once per statement, where a join of PipelineStage looks the stage up per deal."""
    return (
        select(PipelineStage.id, PipelineStage.rotting_days)
        .where(
            PipelineStage.org_id == org_id,
            PipelineStage.rotting_days.is_not(None),
            PipelineStage.is_won.is_(False),
            PipelineStage.is_lost.is_(False),
        )
        .subquery("rotting_limits")
    )


def past_rotting_limit(limits: Subquery, now: datetime | None = None) -> ColumnElement[bool]:
    """rotting_sql for open deals joined to `rotting_limits` (it does not read the deal's status)."""
    return days_in_stage_sql(now) > limits.c.rotting_days


@dataclass(frozen=True)
class RottingStage:
    """One stage's rotting deals: how many, their value in the organisation's currency, and how many
    of them are in a currency without a rate (counted, not summed)."""

    pipeline: str
    stage: str
    stage_id: uuid.UUID
    rotting_days: int
    count: int
    value: Decimal
    unconverted: int


def rotting_by_stage(
    session: Session | scoped_session[Any],
    org_id: uuid.UUID,
    *,
    owner_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> dict[uuid.UUID, tuple[int, Decimal, int]]:
    """Rotting deals per stage in one GROUP BY: {stage id: (count, value in org currency, unconverted)}."""
    criteria = [Deal.org_id == org_id, Deal.deleted_at.is_(None), rotting_sql(now)]
    if owner_id is not None:
        criteria.append(Deal.owner_id == owner_id)
    value = in_org_currency_sql(org_id, Deal.value, Deal.currency)
    stmt = (
        select(
            Deal.stage_id,
            func.count(Deal.id),
            func.coalesce(func.sum(value), 0),
            func.sum(case((unconverted_sql(org_id, Deal.currency), 1), else_=0)),
        )
        .join(PipelineStage, (PipelineStage.id == Deal.stage_id) & (PipelineStage.org_id == Deal.org_id))
        .where(*criteria)
        .group_by(Deal.stage_id)
    )
    return {
        stage_id: (int(count), Decimal(total or 0).quantize(Decimal("0.01")), int(apart or 0))
        for stage_id, count, total, apart in session.execute(stmt)
    }

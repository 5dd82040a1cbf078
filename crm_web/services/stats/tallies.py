"""The tallies the database keeps of deals and activities (models/tally.py): read, and folded when they pile up.

Each write appends the difference it made, so an organisation's rows grow with its writes; the
first read that finds more than COMPACT_AFTER appended rows folds them into one row per group
(a DELETE ... RETURNING and one INSERT, committed at once: reads hold nothing pending, and the
only callers are the cached statistics' reads). A concurrent write is safe: its rows are either
among those deleted, and so summed, or appended after and left alone; a second reader folding at
the same time waits for the first, then finds only what was appended since.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, type_coerce
from sqlalchemy.orm import InstrumentedAttribute, Session

from crm_web.models import ActivityDayTally, ActivityTally, DealTally

# Appended rows a read may find (in its scope: the organisation, or one owner) before it folds the
# organisation's rows: reading that many more costs about a millisecond, and the read that folds
# them pays three statements more (DELETE, INSERT, COMMIT), once per COMPACT_AFTER writes.
COMPACT_AFTER = 2000


@dataclass(frozen=True)
class DealGroup:
    stage_id: uuid.UUID | None
    status: str
    currency: str
    expected_month: date | None
    closed_month: date | None
    deals: int
    value: Decimal
    weighted: Decimal
    won_days: float
    won_timed: int


DEAL_KEYS = (
    DealTally.org_id,
    DealTally.owner_id,
    DealTally.stage_id,
    DealTally.status,
    DealTally.currency,
    DealTally.expected_month,
    DealTally.closed_month,
)
DEAL_SUMS = (DealTally.deals, DealTally.value, DealTally.weighted, DealTally.won_days, DealTally.won_timed)
ACTIVITY_KEYS = (ActivityTally.org_id, ActivityTally.owner_id, ActivityTally.status, ActivityTally.type)
ACTIVITY_SUMS = (ActivityTally.activities,)
DAY_KEYS = (ActivityDayTally.org_id, ActivityDayTally.owner_id, ActivityDayTally.kind, ActivityDayTally.day)
DAY_SUMS = (ActivityDayTally.activities,)
GROUPS: dict[Any, tuple[tuple[InstrumentedAttribute, ...], tuple[InstrumentedAttribute, ...]]] = {
    DealTally: (DEAL_KEYS, DEAL_SUMS),
    ActivityTally: (ACTIVITY_KEYS, ACTIVITY_SUMS),
    ActivityDayTally: (DAY_KEYS, DAY_SUMS),
}


def deal_groups(session: Session, org_id: uuid.UUID, *, owner_id: uuid.UUID | None = None) -> list[DealGroup]:
    """Live deals of the organisation (or of one owner) by stage, status, currency, expected month, closing month."""
    keys = (DealTally.stage_id, DealTally.status, DealTally.currency, DealTally.expected_month, DealTally.closed_month)
    rows = _read(session, DealTally, keys, DEAL_SUMS, org_id, owner_id)
    return [
        DealGroup(
            stage_id,
            status,
            currency or "",
            expected,
            closed,
            int(deals),
            Decimal(value or 0),
            Decimal(weighted or 0),
            float(won_days or 0),
            int(won_timed or 0),
        )
        for stage_id, status, currency, expected, closed, deals, value, weighted, won_days, won_timed in rows
        if deals
    ]


def stage_sums(
    session: Session, org_id: uuid.UUID, *, closed_since: date
) -> list[tuple[uuid.UUID, str, int, Decimal, Decimal]]:
    """(stage, currency, deals, value, weighted) of the live deals the board's columns count: the open
    ones and those closed in `closed_since`'s month or later. Grouped in SQL by those two keys, each
    sum filtered, not read by every key and filtered here: a few rows per stage instead of one per
    stage, status, currency and month."""
    counted = or_(DealTally.status == "open", DealTally.closed_month >= closed_since)
    sums = (DealTally.deals, DealTally.value, DealTally.weighted)
    rows = _read(session, DealTally, (DealTally.stage_id, DealTally.currency), sums, org_id, None, counted=counted)
    return [
        (stage_id, currency or "", int(deals), Decimal(value or 0), Decimal(weighted or 0))
        for stage_id, currency, deals, value, weighted in rows
        if stage_id is not None and deals
    ]


def activity_counts(
    session: Session, org_id: uuid.UUID, *, owner_id: uuid.UUID | None = None
) -> dict[tuple[str, str], int]:
    """Live activities of the organisation (or of one owner) by (status, type)."""
    rows = _read(session, ActivityTally, (ActivityTally.status, ActivityTally.type), ACTIVITY_SUMS, org_id, owner_id)
    return {(status, type_): int(count) for status, type_, count in rows if count}


def day_sum(org_id: uuid.UUID, owner_id: uuid.UUID | None, kind: str, first: date | None, end: date) -> Any:
    """A scalar subquery: the live activities (of the organisation, or of one owner) of `kind` ("due":
    open, by due day; "completed": by completion day) on the UTC days from `first` (None: from the
    start) up to `end`, excluded, from the day tallies (migration 0041)."""
    stmt = select(func.coalesce(func.sum(ActivityDayTally.activities), 0)).where(
        ActivityDayTally.org_id == org_id, ActivityDayTally.kind == kind, ActivityDayTally.day < end
    )
    if first is not None:
        stmt = stmt.where(ActivityDayTally.day >= first)
    if owner_id is not None:
        stmt = stmt.where(ActivityDayTally.owner_id == owner_id)
    return stmt.scalar_subquery()


def days_appended(org_id: uuid.UUID) -> Any:
    """A scalar subquery: the organisation's appended (not yet folded) day tally rows; a read that finds
    more than COMPACT_AFTER folds them (compact)."""
    return (
        select(func.count())
        .select_from(ActivityDayTally)
        .where(ActivityDayTally.org_id == org_id, ActivityDayTally.compacted.is_(False))
        .scalar_subquery()
    )


def _read(
    session: Session,
    model: Any,
    keys: Sequence[InstrumentedAttribute],
    sums: Sequence[InstrumentedAttribute],
    org_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    *,
    counted: ColumnElement[bool] | None = None,
) -> list[tuple]:
    """The sums by `keys` (of the rows matching `counted` only, when given); every row of the scope
    is read, so the appended ones are counted for the fold."""
    criteria: list[ColumnElement[bool]] = [model.org_id == org_id]
    if owner_id is not None:
        criteria.append(model.owner_id == owner_id)
    totals = [
        func.sum(column) if counted is None else type_coerce(func.sum(column).filter(counted), column.type)
        for column in sums
    ]
    rows = session.execute(
        select(*keys, *totals, func.count().filter(model.compacted.is_(False))).where(*criteria).group_by(*keys)
    ).all()
    if sum(row[-1] for row in rows) > COMPACT_AFTER:
        compact(session, model, org_id)
    return [tuple(row[:-1]) for row in rows]


def compact(session: Session, model: Any, org_id: uuid.UUID) -> None:
    """Fold the organisation's rows of `model` into one per group (groups summing to nothing go)."""
    keys, sums = GROUPS[model]
    removed = session.execute(delete(model).where(model.org_id == org_id).returning(*keys, *sums)).all()
    totals: dict[tuple, list] = {}
    for row in removed:
        group = totals.setdefault(tuple(row[: len(keys)]), [0] * len(sums))
        for index, amount in enumerate(row[len(keys) :]):
            group[index] += amount
    rows = [
        {
            **{key.key: value for key, value in zip(keys, group, strict=False)},
            **{column.key: amount for column, amount in zip(sums, amounts, strict=False)},
            "compacted": True,
        }
        for group, amounts in totals.items()
        if any(amounts)
    ]
    if rows:
        session.execute(insert(model.__table__), rows)  # one executemany (the ORM's bulk path asks row by row)
    session.commit()

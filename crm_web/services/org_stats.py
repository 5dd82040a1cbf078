"""Organisation-wide counts for other services (the internal API): each call is ONE SQL round trip.

The counts are scalar subqueries of one SELECT; a usage snapshot is an INSERT ... SELECT of the
same subqueries with RETURNING. Soft-deleted rows are excluded explicitly (these are Core
statements on the tables, outside the ORM's soft-delete filter).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Uuid, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from crm_web.entities import ENTITIES
from crm_web.errors import NotFound
from crm_web.models import Deal, Organization, UsageRecord, User, utcnow
from crm_web.services.currencies import in_org_currency_sql, org_currency_sql, unconverted_sql
from crm_web.services.sql import session_or_default

# What the organisation counts name: every counted entity of the registry, by its plural.
COUNTED = {e.plural: e.model for e in ENTITIES.values() if e.counted}
DEAL_STATUS_KEYS = ("open", "won", "lost")


def _live(model: Any, *criteria: Any, org_id: uuid.UUID) -> Any:
    table = model.__table__
    return [table.c.org_id == org_id, table.c.deleted_at.is_(None), *criteria]


def _count(model: Any, org_id: uuid.UUID, *criteria: Any) -> Any:
    table = model.__table__
    return select(func.count()).select_from(table).where(*_live(model, *criteria, org_id=org_id)).scalar_subquery()


def _deal_value(org_id: uuid.UUID, status: str) -> Any:
    """The status's deals in the organisation's currency; a currency without a rate is left out."""
    table = Deal.__table__
    return (
        select(func.coalesce(func.sum(in_org_currency_sql(org_id, table.c.value, table.c.currency)), 0))
        .where(*_live(Deal, table.c.status == status, org_id=org_id))
        .scalar_subquery()
    )


def _deals_unconverted(org_id: uuid.UUID, status: str) -> Any:
    table = Deal.__table__
    return _count(Deal, org_id, table.c.status == status, unconverted_sql(org_id, table.c.currency))


def _users(org_id: uuid.UUID) -> Any:
    table = User.__table__
    return select(func.count()).select_from(table).where(table.c.org_id == org_id).scalar_subquery()


def _org_exists(org_id: uuid.UUID) -> Any:
    return exists().where(Organization.__table__.c.id == org_id)


@dataclass(kw_only=True)
class RecordCounts:
    """An organisation's live records per kind (COUNTED) and its users."""

    contacts: int
    companies: int
    deals: int
    leads: int
    activities: int
    users: int


@dataclass(kw_only=True)
class OrgStats(RecordCounts):
    org_id: uuid.UUID
    deals_by_status: dict[str, dict[str, Any]]  # each value in `currency`; "unconverted": deals without a rate
    currency: str = ""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["org_id"] = str(self.org_id)
        return data


def org_stats(*, org_id: uuid.UUID, session: Session | None = None) -> OrgStats:
    """Record counts (deleted excluded) and deals per status with values; unknown org -> NotFound."""
    session = session_or_default(session)
    deal = Deal.__table__
    columns = [_org_exists(org_id).label("org_exists")]
    columns += [_count(model, org_id).label(name) for name, model in COUNTED.items()]
    columns.append(_users(org_id).label("users"))
    for status in DEAL_STATUS_KEYS:
        columns.append(_count(Deal, org_id, deal.c.status == status).label(f"deals_{status}"))
        columns.append(_deal_value(org_id, status).label(f"deals_{status}_value"))
        columns.append(_deals_unconverted(org_id, status).label(f"deals_{status}_unconverted"))
    columns.append(org_currency_sql(org_id).label("currency"))
    row = session.execute(select(*columns)).mappings().one()
    if not row["org_exists"]:
        raise NotFound("Organisation not found.")
    return OrgStats(
        org_id=org_id,
        **{name: int(row[name]) for name in (*COUNTED, "users")},
        deals_by_status={
            status: {
                "count": int(row[f"deals_{status}"]),
                "value": str(Decimal(row[f"deals_{status}_value"]).quantize(Decimal("0.01"))),
                "unconverted": int(row[f"deals_{status}_unconverted"]),
            }
            for status in DEAL_STATUS_KEYS
        },
        currency=row["currency"],
    )


@dataclass(kw_only=True)
class UsageSnapshot(RecordCounts):
    id: uuid.UUID
    org_id: uuid.UUID
    recorded_at: datetime

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(id=str(self.id), org_id=str(self.org_id), recorded_at=self.recorded_at.isoformat())
        return data


def record_usage(*, org_id: uuid.UUID, session: Session | None = None) -> UsageSnapshot:
    """Store a UsageRecord of the current counts: one INSERT ... SELECT ... RETURNING."""
    session = session_or_default(session)
    table: Any = UsageRecord.__table__
    names = list(COUNTED)
    source = select(
        literal(uuid.uuid4(), Uuid()),
        literal(org_id, Uuid()),
        literal(utcnow(), table.c.recorded_at.type),
        *(_count(COUNTED[name], org_id) for name in names),
        _users(org_id),
    ).where(_org_exists(org_id))
    stmt = (
        insert(table)
        .from_select(["id", "org_id", "recorded_at", *names, "users"], source)
        .returning(*(table.c[name] for name in ("id", "org_id", "recorded_at", *names, "users")))
    )
    row = session.execute(stmt).mappings().one_or_none()
    if row is None:
        session.rollback()
        raise NotFound("Organisation not found.")
    session.commit()
    return UsageSnapshot(**dict(row))

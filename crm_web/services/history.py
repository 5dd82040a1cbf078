"""Record history: written by services in the same transaction as the change they describe,
and read back (newest first, with who did it) for record timelines and the trash."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, joinedload

from crm_web.models import RecordHistory, utcnow
from crm_web.services.sql import session_or_default

if TYPE_CHECKING:
    from crm_web.services.base import Actor


def _jsonable(value: Any) -> Any:
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def label_of(obj: Any) -> str:
    for attr in ("full_name", "name", "subject"):
        value = getattr(obj, attr, None)
        if value:
            return str(value)[:255]
    return ""


def snapshot_changes(obj: Any, values: Mapping[str, Any], *, ignored: Iterable[str] = ()) -> dict[str, Any]:
    """{field: [old, new]} for the values that really change."""
    skip = set(ignored)
    changes: dict[str, Any] = {}
    for name, new in values.items():
        if name in skip or not hasattr(obj, name):
            continue
        old = getattr(obj, name)
        if isinstance(new, list) or isinstance(old, list):
            continue  # relationships (tags) are recorded by the service that changes them
        if old != new:
            changes[name] = [_jsonable(old), _jsonable(new)]
    return changes


def record_change(
    session: Session,
    actor: Actor,
    entity_type: str,
    obj: Any,
    action: str,
    changes: dict[str, Any] | None = None,
    *,
    entity_ids: Iterable[uuid.UUID] | None = None,
    labels: Mapping[uuid.UUID, str] | None = None,
    per_id_changes: Mapping[uuid.UUID, dict[str, Any]] | None = None,
) -> RecordHistory | None:
    """Append history rows: one for `obj` (returned), or one per id of a bulk change (one INSERT).

    A bulk change may name each record (`labels`) and add per-record changes (`per_id_changes`).
    """
    if entity_ids is not None:
        now = utcnow()
        ids = list(entity_ids)
        # "bulk" tells the timeline the change came with others (not said of a one-record change).
        marker = {"bulk": True} if len(ids) > 1 else {}
        rows = [
            {
                "id": uuid.uuid4(),
                "org_id": actor.org_id,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "entity_label": ((labels or {}).get(entity_id) or "")[:255],
                "action": action,
                "changes": {**marker, **(changes or {}), **(per_id_changes or {}).get(entity_id, {})},
                "actor_id": actor.user_id,
                "created_at": now,
            }
            for entity_id in ids
        ]
        if rows:
            session.execute(insert(RecordHistory), rows)
        return None
    entry = RecordHistory(
        org_id=actor.org_id,
        entity_type=entity_type,
        entity_id=obj.id,
        entity_label=label_of(obj),
        action=action,
        changes={k: v for k, v in (changes or {}).items()},
        actor_id=actor.user_id,
    )
    session.add(entry)
    return entry


HISTORY_LIMIT = 50


def history_for(
    actor: Actor,
    entity_type: str,
    entity_id: uuid.UUID,
    *,
    limit: int = HISTORY_LIMIT,
    session: Session | None = None,
) -> list[RecordHistory]:
    """One record's history in the actor's organisation, newest first, with each actor loaded (one statement)."""

    session = session_or_default(session)
    stmt = (
        select(RecordHistory)
        .options(joinedload(RecordHistory.actor))
        .where(
            RecordHistory.org_id == actor.org_id,
            RecordHistory.entity_type == entity_type,
            RecordHistory.entity_id == entity_id,
        )
        .order_by(RecordHistory.created_at.desc(), RecordHistory.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return list(session.scalars(stmt))

"""Record history: written by services in the same transaction as the change they describe,
and read back (newest first, with who did it) for record timelines and the trash."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, insert, literal, select, union_all
from sqlalchemy.orm import Session, joinedload

from crm_web.models import RecordHistory, utcnow
from crm_web.services.sql import session_or_default

if TYPE_CHECKING:
    from crm_web.services.base import Actor


def jsonable(value: Any) -> Any:
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
            changes[name] = [jsonable(old), jsonable(new)]
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
    from crm_web.services.live import note_actor  # its hooks need the models this module's callers load

    note_actor(session, actor.org_id, actor.user_id, actor.name)
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


# --- history as a person reads it ----------------------------------------------------------------

# A change of one of these fields names a record: field -> (kind, label of the field).
REFERENCES = {
    "owner_id": ("user", "Owner"),
    "stage_id": ("stage", "Stage"),
    "pipeline_id": ("pipeline", "Pipeline"),
    "company_id": ("company", "Company"),
    "primary_company_id": ("company", "Company"),
    "contact_id": ("contact", "Contact"),
    "deal_id": ("deal", "Deal"),
    "lead_id": ("lead", "Lead"),
    "from_lead": ("lead", "From lead"),
    "converted_contact_id": ("contact", "Converted contact"),
    "converted_company_id": ("company", "Converted company"),
    "converted_deal_id": ("deal", "Converted deal"),
    "tags": ("tag", "Tags"),
}
# Where a named record links to: kind -> (endpoint, its id argument).
LINKS = {
    "company": ("companies.detail", "company_id"),
    "contact": ("contacts.detail", "contact_id"),
    "deal": ("deals.detail", "deal_id"),
    "lead": ("leads.detail", "lead_id"),
}
# Fields holding a stored choice: field -> choice kind (formatting.CHOICES); "status" by entity.
CHOICE_FIELDS = {
    "lead_source": "lead_source",
    "source": "lead_source",
    "type": "activity_type",
    "priority": "activity_priority",
    "role": "user_role",
}
STATUS_CHOICES = {
    "contact": "contact_status",
    "deal": "deal_status",
    "lead": "lead_status",
    "activity": "activity_status",
}
HIDDEN = frozenset({"bulk", "from_trash", "relocated", "moved", "import", "import_id", "merge_id"})


@dataclass(frozen=True)
class Shown:
    """One side of a change as read: text, and the record it names (a link) or "(deleted)"."""

    text: str
    endpoint: str = ""
    args: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


@dataclass(frozen=True)
class ChangeLine:
    label: str
    old: Shown | None = None
    new: Shown | None = None
    text: str = ""  # a change that is not old -> new ("added X", a plain note)


@dataclass(frozen=True)
class HistoryItem:
    """A history entry with its changes in words; the entry's own fields read through."""

    entry: RecordHistory
    lines: tuple[ChangeLine, ...]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entry, name)


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value).lstrip("+-"))
    except (TypeError, ValueError):
        return None


def _names(
    session: Session, org_id: uuid.UUID, wanted: dict[str, set[uuid.UUID]]
) -> dict[tuple[str, uuid.UUID], tuple[str, bool]]:
    """(kind, id) -> (name, trashed) of every record the entries name: ONE statement (a UNION ALL
    of one branch per kind named), whatever the number of entries."""
    from crm_web.models import Company, Contact, Deal, Lead, Pipeline, PipelineStage, Tag, User
    from crm_web.models.mixins import full_name

    sources: dict[str, tuple[Any, Any]] = {
        "user": (User, User.__table__.c.name),
        "stage": (PipelineStage, PipelineStage.__table__.c.name),
        "pipeline": (Pipeline, Pipeline.__table__.c.name),
        "company": (Company, Company.__table__.c.name),
        "contact": (Contact, full_name(Contact.__table__.c.first_name, Contact.__table__.c.last_name)),
        "deal": (Deal, Deal.__table__.c.name),
        "lead": (Lead, full_name(Lead.__table__.c.first_name, Lead.__table__.c.last_name)),
        "tag": (Tag, Tag.__table__.c.name),
    }
    branches = []
    for kind, ids in sorted(wanted.items()):
        if not ids:
            continue
        model, label = sources[kind]
        table = model.__table__
        trashed = table.c.deleted_at.is_not(None) if "deleted_at" in table.c else literal(False)
        branches.append(
            select(
                literal(kind).label("kind"), table.c.id, cast(label, String).label("name"), trashed.label("trashed")
            ).where(table.c.org_id == org_id, table.c.id.in_(sorted(ids)))
        )
    if not branches:
        return {}
    rows = session.execute(union_all(*branches) if len(branches) > 1 else branches[0]).all()
    return {(kind, row_id): (name or "", bool(trashed)) for kind, row_id, name, trashed in rows}


def _date_text(value: Any, tz: Any) -> str | None:
    """An ISO date or time of a change, in the organisation's form and time zone; else None."""
    from crm_web.formatting import short_date, short_datetime

    if not isinstance(value, str) or len(value) < 10 or value[4:5] != "-" or value[7:8] != "-":
        return None
    try:
        if len(value) == 10:
            return short_date(date.fromisoformat(value))
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return short_datetime(moment.astimezone(tz) if moment.tzinfo else moment)


def readable(
    actor: Actor, entity_type: str, entries: Iterable[RecordHistory], *, session: Session | None = None
) -> list[HistoryItem]:
    """Entries with their changes in words: names (linked while the record exists, "(deleted)"
    once trashed or gone) instead of ids, labels instead of stored choices, dates in the
    organisation's form and time zone. One statement for all the names."""
    from zoneinfo import ZoneInfo

    from crm_web.custom_fields import all_fields, display
    from crm_web.formatting import choice_label
    from crm_web.services.custom_fields import org_schema

    session = session_or_default(session)
    entries = list(entries)
    # Custom fields by their history name (cf_<key>), trashed ones too: their changes stay readable.
    custom = {}
    if any(name.startswith("cf_") for entry in entries for name in entry.changes or {}):
        custom = {cf.name: cf for cf in all_fields(org_schema(session, actor.org_id), entity_type)}
    wanted: dict[str, set[uuid.UUID]] = {}
    for entry in entries:
        for name, value in (entry.changes or {}).items():
            if name in REFERENCES or (name in custom and custom[name].type == "user"):
                kind = REFERENCES[name][0] if name in REFERENCES else "user"
                for side in value if isinstance(value, list) else [value]:
                    found = _as_uuid(side) if side else None
                    if found:
                        wanted.setdefault(kind, set()).add(found)
    names = _names(session, actor.org_id, wanted)
    try:
        tz: Any = ZoneInfo(actor.time_zone or "UTC")
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")

    def record(kind: str, value: Any) -> Shown | None:
        if value in (None, ""):
            return None
        found = _as_uuid(value)
        if found is None:
            return Shown(str(value))
        name, trashed = names.get((kind, found), ("", True))
        if trashed or not name:
            return Shown(f"{name} (deleted)" if name else "(deleted)", deleted=True)
        endpoint, arg = LINKS.get(kind, ("", ""))
        return Shown(name, endpoint, {arg: str(found)} if endpoint else {})

    def plain(name: str, value: Any) -> Shown | None:
        if value in (None, ""):
            return None
        kind = STATUS_CHOICES.get(entity_type, "") if name == "status" else CHOICE_FIELDS.get(name, "")
        if kind:
            return Shown(choice_label(str(value), kind))
        return Shown(_date_text(value, tz) or str(value))

    items = []
    for entry in entries:
        lines = []
        for name, value in sorted((entry.changes or {}).items()):
            if name in HIDDEN:
                continue
            if name == "tags" and isinstance(value, list) and len(value) == 2:
                added, removed = value[1], value[0]
                for sign, side in (("added", added), ("removed", removed)):
                    shown = record("tag", side)
                    if shown is not None:
                        lines.append(ChangeLine("Tags", text=f"{sign} {shown.text}"))
                continue
            if name in REFERENCES:
                kind, label = REFERENCES[name]
                if isinstance(value, list) and len(value) == 2:
                    lines.append(ChangeLine(label, record(kind, value[0]), record(kind, value[1])))
                else:
                    shown = record(kind, value)
                    lines.append(ChangeLine(label, new=shown))
                continue
            cf = custom.get(name)
            if cf is not None and isinstance(value, list) and len(value) == 2:
                if cf.type == "user":
                    lines.append(ChangeLine(cf.label, record("user", value[0]), record("user", value[1])))
                else:
                    old_text, new_text = display(cf, value[0]), display(cf, value[1])
                    lines.append(
                        ChangeLine(
                            cf.label,
                            plain(name, old_text) if cf.type == "date" else (Shown(old_text) if old_text else None),
                            plain(name, new_text) if cf.type == "date" else (Shown(new_text) if new_text else None),
                        )
                    )
                continue
            label = name.replace("_", " ").capitalize()
            if isinstance(value, list) and len(value) == 2:
                lines.append(ChangeLine(label, plain(name, value[0]), plain(name, value[1])))
            else:
                lines.append(ChangeLine(label, text=str(value)))
        items.append(HistoryItem(entry, tuple(lines)))
    return items

"""Record pickers: the type-ahead behind every form field that links a record (company, contact, deal,
lead, owner).

A form page never lists an organisation's records: the field holds the chosen id and its name, and
the browser asks `matches` for at most LIMIT names as the user types (one statement, served by the
search indexes: names starting with a short query from the name-order index, longer words through
the trigram indexes). `labels` names the ids a form shows (one statement for all its pickers). The
posted id is still checked by the entity's service (another organisation's id is a form error).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Uuid, cast, literal, select, union_all

from crm_web.entities import COMPANY, CONTACT, DEAL, LEAD, Entity
from crm_web.models import User
from crm_web.models.mixins import name_order_key
from crm_web.services.base import ActorService
from crm_web.services.sql import AnySelect
from crm_web.services.text_search import MIN_CONTAINS_LENGTH, like_escape, text_match

LIMIT = 20
MAX_QUERY = 100
# A team with more active users than this picks an owner by typing, not from a select.
OWNER_SELECT_LIMIT = 50

# The record kinds a picker can link, by the name its URL uses.
PICKED: dict[str, Entity] = {entity.name: entity for entity in (COMPANY, CONTACT, DEAL, LEAD)}
KINDS = (*PICKED, "owner")


@dataclass(frozen=True)
class Pick:
    id: uuid.UUID
    label: str
    detail: str = ""


class PickerService(ActorService):
    """Names of this organisation's live records for a picker (never another organisation's)."""

    def matches(self, kind: str, q: str) -> list[Pick]:
        """At most LIMIT records of `kind` whose name matches `q` (every name, in name order, for an
        empty q), the best first: ONE statement."""
        q = " ".join(q.split())[:MAX_QUERY]
        if kind == "owner":
            return self._owners(q)
        entity = PICKED[kind]
        search = entity.global_search
        assert search is not None  # every picked entity is globally searched
        model = entity.model
        dialect = self.session.get_bind().dialect.name
        stmt = select(model.id, search.label.label("label"), search.detail.label("detail")).where(
            model.org_id == self.org_id, model.deleted_at.is_(None)
        )
        match = text_match(dialect, q, search.searched)
        if match is None:
            stmt = stmt.order_by(name_order_key(search.searched[0], dialect), model.id)
        else:
            assert match.name_order is not None and match.starts_with is not None
            # A short query matches where names start (the name-order index); a longer one anywhere in
            # a word (the trigram indexes).
            clause = match.starts_with if len(q) < MIN_CONTAINS_LENGTH else match.clause
            stmt = stmt.where(clause).order_by(match.rank, match.name_order, model.id)
        rows = self.session.execute(stmt.limit(LIMIT)).all()
        return [Pick(row.id, (row.label or "").strip(), _detail(row.detail)) for row in rows]

    def _owners(self, q: str) -> list[Pick]:
        stmt = select(User.id, User.name, User.email).where(User.org_id == self.org_id, User.active.is_(True))
        if q:
            pattern = f"%{like_escape(q)}%"
            stmt = stmt.where(User.name.ilike(pattern, escape="\\") | User.email.ilike(pattern, escape="\\"))
        rows = self.session.execute(stmt.order_by(User.name, User.id).limit(LIMIT)).all()
        return [Pick(row.id, row.name, row.email) for row in rows]

    def labels(self, chosen: Mapping[str, tuple[str, Any]]) -> dict[str, str]:
        """{field: name} for {field: (kind, id)}: the names a form's pickers show, in ONE statement (none
        when no picker holds an id). An id that is not a live record of this organisation has no name."""
        parts: list[AnySelect] = []
        for field, (kind, value) in chosen.items():
            record_id = _as_uuid(value)
            if record_id is None or kind not in KINDS:
                continue
            if kind == "owner":
                label: Any = User.name
                stmt = select(literal(field, String).label("field"), cast(label, String).label("label")).where(
                    User.org_id == self.org_id, User.id == literal(record_id, Uuid)
                )
            else:
                entity = PICKED[kind]
                assert entity.global_search is not None
                model = entity.model
                stmt = select(
                    literal(field, String).label("field"), cast(entity.global_search.label, String).label("label")
                ).where(model.org_id == self.org_id, model.deleted_at.is_(None), model.id == literal(record_id, Uuid))
            parts.append(stmt)
        if not parts:
            return {}
        rows = self.session.execute(parts[0] if len(parts) == 1 else union_all(*parts)).all()
        return {row.field: (row.label or "").strip() for row in rows}


def _detail(value: Any) -> str:
    return "" if value is None else str(value)


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None

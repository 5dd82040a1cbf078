"""Stale edits (optimistic locking of forms) as data: who changed the record (or the field an inline
edit showed) after the form was opened, when, and what it holds now. Views put it into words
(crm_web/forms: conflict_message)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from crm_web.errors import Conflict
from crm_web.services.history import history_for

# History rows read to name who changed a record (or one field) when an edit is refused as stale.
CONFLICT_HISTORY_ROWS = 20


@dataclass(frozen=True)
class StaleEdit:
    entity_label: str  # "contact"
    fields: tuple[str, ...]  # the fields an inline edit showed that changed; () for a whole form
    current_version: int
    by_name: str | None = None  # who changed it last; None: no history says
    by_you: bool = False  # the actor's own save in another tab
    at: datetime | None = None
    now: Any = None  # the field's value now, when one field was shown


class EditConflict(Conflict):
    """A refused stale save, carrying the StaleEdit the view words (the message is a plain fallback)."""

    def __init__(self, stale: StaleEdit):
        super().__init__(
            f"This {stale.entity_label} was changed by someone else meanwhile. Reload and try again.",
            current_version=stale.current_version,
        )
        self.stale = stale


def same_value(current: Any, shown: Any) -> bool:
    """Whether a stored value is still what a form showed: form values are text, and empty is None."""
    if current in (None, "") or shown in (None, ""):
        return current in (None, "") and shown in (None, "")
    return str(current) == str(shown)


def changed_fields(obj: Any, shown: Mapping[str, Any]) -> list[str]:
    """The fields of `shown` that no longer hold what was shown."""
    return [name for name, value in shown.items() if not same_value(getattr(obj, name), value)]


def stale_edit(
    session: Session, actor: Any, entity_type: str, entity_label: str, obj: Any, *, fields: Sequence[str] = ()
) -> StaleEdit:
    """Who last changed the record (or one of `fields`) and when, from its history: one statement, run
    only when an edit is refused."""
    entries = history_for(actor, entity_type, obj.id, limit=CONFLICT_HISTORY_ROWS, session=session)
    entry = next(
        (
            e
            for e in entries
            if e.action != "created" and (not fields or any(name in (e.changes or {}) for name in fields))
        ),
        None,
    )
    stale = StaleEdit(
        entity_label=entity_label,
        fields=tuple(fields),
        current_version=obj.version,
        now=getattr(obj, fields[0]) if len(fields) == 1 else None,
    )
    if entry is None:
        return stale
    by_you = entry.actor_id is not None and entry.actor_id == _user_id(actor)
    by_name = entry.actor.name if entry.actor is not None else None
    return replace(stale, by_name=by_name, by_you=by_you, at=entry.created_at)


def _user_id(actor: Any) -> uuid.UUID | None:
    return getattr(actor, "user_id", None)

"""Small query pieces several services share: a safe "contains" search and the org's users."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from crm_web.models import User

LIKE_ESCAPE = "\\"


def like_escape(text: str) -> str:
    """Escape LIKE wildcards so user input matches literally."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def contains_clause(term: str, *columns: Any) -> ColumnElement[bool]:
    """Case-insensitive "any of these columns contains every word of `term`" (bound parameters only)."""
    words = [w for w in term.split() if w][:8]
    per_word = [
        or_(*(column.ilike(f"%{like_escape(word)}%", escape=LIKE_ESCAPE) for column in columns)) for word in words
    ]
    return and_(*per_word) if per_word else true()


def org_users(session: Session, org_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """(id, name) of the organisation's active users, by name: the choices of an owner select."""
    return [(row.id, row.name) for row in session.execute(
        select(User.id, User.name).where(User.org_id == org_id, User.active.is_(True)).order_by(User.name)
    )]


def is_org_user(session: Session, org_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return session.scalar(select(User.id).where(User.id == user_id, User.org_id == org_id)) is not None

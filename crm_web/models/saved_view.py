"""Saved views: a named list state (filter, search, sort, page size, columns; the board's pipeline)."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, SoftDeleteMixin, TimestampMixin


class SavedView(IdMixin, TimestampMixin, OrgScopedMixin, SoftDeleteMixin, Base):
    """One user's view of one list; `shared` ones are seen by the whole organisation. `query` is the
    list state as its URL's query string, in the list's canonical encoding."""

    __tablename__ = "saved_views"
    __table_args__ = (Index("ix_saved_views_org_list", "org_id", "list_key"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    list_key: Mapped[str] = mapped_column(String(20))  # services/saved_views.LISTS
    name: Mapped[str] = mapped_column(String(80))
    shared: Mapped[bool] = mapped_column(default=False, server_default=false())
    query: Mapped[str] = mapped_column(Text, default="", server_default="")

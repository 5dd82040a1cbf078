"""Append-only record history and per-organisation usage snapshots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, utcnow

HISTORY_ACTIONS = ("created", "updated", "deleted", "restored", "moved", "converted", "purged", "merged", "unmerged")


class RecordHistory(IdMixin, OrgScopedMixin, Base):
    """One change to one record; never updated, written in the same transaction as the change."""

    __tablename__ = "record_history"
    __table_args__ = (Index("ix_record_history_entity", "org_id", "entity_type", "entity_id", "created_at"),)

    entity_type: Mapped[str] = mapped_column(String(30))
    # No foreign key: the history outlives a purged record.
    entity_id: Mapped[uuid.UUID]
    entity_label: Mapped[str] = mapped_column(String(255), default="")
    action: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor = relationship("User", lazy="raise_on_sql")


class UsageRecord(IdMixin, OrgScopedMixin, Base):
    """A snapshot of an organisation's record counts (billing and reporting)."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_org_recorded", "org_id", "recorded_at"),)

    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    contacts: Mapped[int] = mapped_column(default=0)
    companies: Mapped[int] = mapped_column(default=0)
    deals: Mapped[int] = mapped_column(default=0)
    leads: Mapped[int] = mapped_column(default=0)
    activities: Mapped[int] = mapped_column(default=0)
    users: Mapped[int] = mapped_column(default=0)

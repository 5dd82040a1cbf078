"""Duplicates: pairs a user said are not duplicates, and merges (with what Undo needs to revert them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, utcnow


class DuplicateDismissal(IdMixin, OrgScopedMixin, Base):
    """ "Not a duplicate": the pair (smaller id first) never shows on the Duplicates page again."""

    __tablename__ = "duplicate_dismissals"
    __table_args__ = (UniqueConstraint("org_id", "entity_type", "first_id", "second_id", name="uq_duplicate_pair"),)

    entity_type: Mapped[str] = mapped_column(String(30))
    # No foreign keys: one table for three entities; a purged record's pairs are simply never met again.
    first_id: Mapped[uuid.UUID]
    second_id: Mapped[uuid.UUID]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Merge(IdMixin, OrgScopedMixin, Base):
    """One merge of records into a survivor: which, by whom, and exactly what it changed, so that Undo
    moves back what it moved and writes back the survivor's overwritten values (services/duplicates)."""

    __tablename__ = "merges"
    __table_args__ = (Index("ix_merges_org_survivor", "org_id", "entity_type", "survivor_id"),)

    entity_type: Mapped[str] = mapped_column(String(30))
    survivor_id: Mapped[uuid.UUID]
    merged_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # {"fields": {name: [before, after]}, "moved": {relation: [[row id, from id], ...]}, "added": {...}}
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)


class MergeProposal(IdMixin, OrgScopedMixin, Base):
    """A sales user's "these should be merged": shown to managers and admins on the Duplicates page,
    who open the merge screen with its records or dismiss it. One per group of records (`key`: the
    records' ids, sorted and comma-separated); a merge of exactly that group removes it."""

    __tablename__ = "merge_proposals"
    __table_args__ = (UniqueConstraint("org_id", "entity_type", "key", name="uq_merge_proposal_group"),)

    entity_type: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(400))
    record_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    proposed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DuplicateScan(IdMixin, OrgScopedMixin, Base):
    """The stored result of an organisation's duplicate scan of one entity, computed by a background job
    when the organisation is large (services/duplicates: the page reads it instead of scanning)."""

    __tablename__ = "duplicate_scans"
    __table_args__ = (UniqueConstraint("org_id", "entity_type", name="uq_duplicate_scan_entity"),)

    entity_type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, done, failed
    # [{"ids": [...], "score": n, "reasons": [...]}, ...], best first (every group, not only those shown).
    groups: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    computed_at: Mapped[datetime | None] = mapped_column(default=None)

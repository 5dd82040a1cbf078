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
    when the organisation is large (services/duplicates: the page reads it instead of scanning). Its
    groups are rows (DuplicateScanGroup), so a page reads one page of them whatever their number."""

    __tablename__ = "duplicate_scans"
    __table_args__ = (UniqueConstraint("org_id", "entity_type", name="uq_duplicate_scan_entity"),)

    entity_type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, done, failed
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    computed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Groups the scan stored (positions 0 .. group_count - 1, best first).
    group_count: Mapped[int] = mapped_column(default=0)
    # Positions of the groups "Not a duplicate" removed since the scan, ascending: few (each one a
    # manager's click), and what turns the n-th group still shown into a position range, so a page
    # is one range read of the groups' primary key.
    dismissed: Mapped[list[int]] = mapped_column(JSON, default=list)


class DuplicateScanGroup(Base):
    """One group of a stored scan: its place in the scan's order (0 = most likely), its records' ids
    (the scan's order) and why they match. Replaced as a whole by each scan."""

    __tablename__ = "duplicate_scan_groups"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(30), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    score: Mapped[int]
    ids: Mapped[list[str]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON)


class DuplicateScanMember(Base):
    """Which stored group holds a record (a record is in at most one group): the `group=<record id>`
    link and "Not a duplicate" find a group by one primary-key lookup, on both engines."""

    __tablename__ = "duplicate_scan_members"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(30), primary_key=True)
    record_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    position: Mapped[int]

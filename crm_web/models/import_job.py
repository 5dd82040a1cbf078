"""CSV imports: one row per file imported (or dry-run), and the previous values of what it updated."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, TimestampMixin

IMPORT_STATUSES = ("draft", "pending", "running", "done", "failed", "undone")
IMPORT_ENTITIES = ("contact", "company", "lead", "deal", "activity")


class Import(IdMixin, TimestampMixin, OrgScopedMixin, Base):
    """One import of one CSV file into one entity: who, when, what, how it went.

    Every record it created carries its id (`import_id` on the entity tables); what it updated keeps
    its previous values in `import_updates`, so Undo can revert exactly this import."""

    __tablename__ = "imports"
    __table_args__ = (Index("ix_imports_org_created", "org_id", "created_at"),)

    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    entity: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str] = mapped_column(String(255))
    # Where the uploaded file waits for its job (removed when the import ends).
    file_path: Mapped[str | None] = mapped_column(String(1000))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    total_rows: Mapped[int] = mapped_column(default=0)
    rows_done: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    skipped_count: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def percent(self) -> int:
        if self.status in ("done", "undone"):
            return 100
        return int(100 * self.rows_done / self.total_rows) if self.total_rows else 0


class ImportUpdate(IdMixin, OrgScopedMixin, Base):
    """A record an import updated, with the values it had before (Undo writes them back)."""

    __tablename__ = "import_updates"

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[uuid.UUID]
    previous: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

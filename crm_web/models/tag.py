"""Tags and their links to contacts, companies, leads and deals."""

from __future__ import annotations

import uuid

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, SoftDeleteMixin, TimestampMixin


class Tag(IdMixin, TimestampMixin, OrgScopedMixin, SoftDeleteMixin, Base):
    """A deleted tag keeps its links until Undo (or a new tag takes its name, which purges it)."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_tags_org_name"),)

    name: Mapped[str] = mapped_column(String(60))
    color: Mapped[str] = mapped_column(String(7), default="#6366f1")
    # No foreign key (migration 0014: SQLite could add one only by rebuilding the table).
    deleted_by_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


def _tag_link_table(name: str, entity_table: str) -> Table:
    entity_column = f"{entity_table[:-1] if not entity_table.endswith('ies') else entity_table[:-3] + 'y'}_id"
    return Table(
        name,
        Base.metadata,
        Column(entity_column, ForeignKey(f"{entity_table}.id", ondelete="CASCADE"), primary_key=True),
        Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
    )


contact_tags = _tag_link_table("contact_tags", "contacts")
company_tags = _tag_link_table("company_tags", "companies")
lead_tags = _tag_link_table("lead_tags", "leads")
deal_tags = _tag_link_table("deal_tags", "deals")

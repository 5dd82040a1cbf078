"""Deals (opportunities) moving through a pipeline's stages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, CustomValuesMixin, RecordMixin
from crm_web.models.company import Company
from crm_web.models.contact import Contact
from crm_web.models.mixins import (
    live_index,
    name_order_index,
    search_key_index,
    sqlite_name_order_index,
    trash_index,
    trigram_index,
)
from crm_web.models.pipeline import Pipeline, PipelineStage
from crm_web.models.tag import Tag, deal_tags

DEAL_STATUSES = [("open", "Open"), ("won", "Won"), ("lost", "Lost")]
CURRENCIES = ["USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF"]


class Deal(RecordMixin, CustomValuesMixin, Base):
    __tablename__ = "deals"
    __table_args__ = (
        CheckConstraint("value >= 0", name="deal_value_non_negative"),
        CheckConstraint(
            "probability IS NULL OR (probability >= 0 AND probability <= 100)",
            name="deal_probability_valid_range",
        ),
        Index("ix_deals_org_pipeline_stage_position", "org_id", "pipeline_id", "stage_id", "position"),
        Index("ix_deals_org_status_close", "org_id", "status", "expected_close_date"),
        Index("ix_deals_org_company", "org_id", "company_id"),
        Index("ix_deals_org_created", "org_id", "created_at"),
        trash_index("deals"),
        live_index("deals", "status"),
        Index("ix_deals_org_contact", "org_id", "contact_id"),
        # My day's open deals of one owner, in its order, with what its rotting check reads (0034).
        Index(
            "ix_deals_org_owner_open_close_live",
            "org_id",
            "owner_id",
            "expected_close_date",
            "stage_changed_at",
            "id",
            "stage_id",
            postgresql_where=text("status = 'open' AND deleted_at IS NULL"),
            sqlite_where=text("status = 'open' AND deleted_at IS NULL"),
        ),
        trigram_index("deal_name_search_idx", "name"),
    )

    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    # None means "use the stage's probability".
    probability: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(10), default="open")
    expected_close_date: Mapped[date | None]
    closed_at: Mapped[datetime | None]
    lost_reason: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(30))
    description: Mapped[str | None] = mapped_column(Text)
    # Order inside a board column; fractional so a move rewrites one row.
    position: Mapped[float] = mapped_column(default=0.0)
    stage_changed_at: Mapped[datetime | None]
    pipeline_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pipelines.id", ondelete="SET NULL"))
    stage_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pipeline_stages.id", ondelete="SET NULL"))
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))

    owner = relationship("User", foreign_keys="Deal.owner_id", lazy="raise_on_sql")
    pipeline: Mapped[Pipeline | None] = relationship(lazy="raise_on_sql")
    stage: Mapped[PipelineStage | None] = relationship(lazy="raise_on_sql")
    contact: Mapped[Contact | None] = relationship(lazy="raise_on_sql")
    company: Mapped[Company | None] = relationship(lazy="raise_on_sql")
    tags: Mapped[list[Tag]] = relationship(secondary=deal_tags, lazy="raise_on_sql", order_by=Tag.name)


# The global and list searches match search_key(...) of these expressions (services/text_search.py).
_t = Deal.__table__
search_key_index(_t, "deal_name_trgm_idx", _t.c.name)
name_order_index(_t, "deal_name_order_idx", _t.c.name)
sqlite_name_order_index(_t, "deal_name_order_sqlite_idx", _t.c.name)
del _t

"""Leads: unqualified interest that may be converted into a contact, company and deal."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, CustomValuesMixin, RecordMixin
from crm_web.models.mixins import (
    full_name,
    live_index,
    name_order_index,
    phone_key_index,
    search_key_index,
    sqlite_name_order_index,
    surname_index,
    trash_index,
    trigram_index,
)
from crm_web.models.tag import Tag, lead_tags

LEAD_STATUSES = [
    ("new", "New"),
    ("contacted", "Contacted"),
    ("qualified", "Qualified"),
    ("unqualified", "Unqualified"),
    ("converted", "Converted"),
]


class Lead(RecordMixin, CustomValuesMixin, Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_org_status", "org_id", "status"),
        Index("ix_leads_org_created", "org_id", "created_at"),
        live_index("leads", "created_at"),  # the list's total, and its default order (newest first)
        live_index("leads", "owner_id", "status"),  # the users list's open leads per user (migration 0042)
        trash_index("leads"),
        CheckConstraint("score >= 0 AND score <= 100", name="lead_score_valid_range"),
        trigram_index("lead_name_search_idx", "first_name", "last_name"),
        trigram_index("lead_email_search_idx", "email"),
        trigram_index("lead_company_search_idx", "company_name"),
    )

    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(150))
    company_name: Mapped[str | None] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="new")
    score: Mapped[int] = mapped_column(default=0)
    estimated_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    notes: Mapped[str | None] = mapped_column(Text)
    converted_at: Mapped[datetime | None]
    converted_contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    converted_company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    converted_deal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"))

    owner = relationship("User", foreign_keys="Lead.owner_id", lazy="raise_on_sql")
    tags: Mapped[list[Tag]] = relationship(secondary=lead_tags, lazy="raise_on_sql", order_by=Tag.name)
    converted_contact = relationship("Contact", foreign_keys=[converted_contact_id], lazy="raise_on_sql")
    converted_company = relationship("Company", foreign_keys=[converted_company_id], lazy="raise_on_sql")
    converted_deal = relationship("Deal", foreign_keys=[converted_deal_id], lazy="raise_on_sql")

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


# The global and list searches match search_key(...) of these expressions (services/text_search.py).
_t = Lead.__table__
search_key_index(_t, "lead_name_trgm_idx", full_name(_t.c.first_name, _t.c.last_name))
search_key_index(_t, "lead_email_trgm_idx", _t.c.email)
# The duplicate scan's same-email join compares lower(email) (services/duplicates/matching.py).
Index("ix_leads_org_email_key", _t.c.org_id, func.lower(_t.c.email))
search_key_index(_t, "lead_company_trgm_idx", _t.c.company_name)
name_order_index(_t, "lead_name_order_idx", full_name(_t.c.first_name, _t.c.last_name))
surname_index(_t, "lead_surname_idx", _t.c.last_name, full_name(_t.c.first_name, _t.c.last_name))
# SQLite's twins of the two above.
sqlite_name_order_index(_t, "lead_name_order_sqlite_idx", full_name(_t.c.first_name, _t.c.last_name))
sqlite_name_order_index(
    _t, "lead_surname_sqlite_idx", full_name(_t.c.first_name, _t.c.last_name), surname=_t.c.last_name
)
# The forms' duplicate warning looks up the typed phone's key (Matcher.candidates; migration 0042).
phone_key_index(_t, "lead_phone_key_idx")
del _t

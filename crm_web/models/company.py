"""Companies (accounts)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Index, Numeric, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, CustomValuesMixin, RecordMixin
from crm_web.models.mixins import (
    AddressMixin,
    live_index,
    name_order_index,
    phone_key_index,
    search_key_index,
    sqlite_name_order_index,
    trash_index,
    trigram_index,
)
from crm_web.models.tag import Tag, company_tags

COMPANY_SIZES = ["1-10", "11-50", "51-200", "201-500", "501-1000", "1000+"]


class Company(RecordMixin, CustomValuesMixin, AddressMixin, Base):
    __tablename__ = "companies"
    __table_args__ = (
        Index("ix_companies_org_name", "org_id", "name"),
        trash_index("companies"),
        live_index("companies", "created_at"),  # the list's total: an index-only count
        trigram_index("company_name_search_idx", "name"),
    )

    name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[str | None] = mapped_column(String(20))
    employee_count: Mapped[int | None]
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    description: Mapped[str | None] = mapped_column(Text)

    owner = relationship("User", foreign_keys="Company.owner_id", lazy="raise_on_sql")
    tags: Mapped[list[Tag]] = relationship(secondary=company_tags, lazy="raise_on_sql", order_by=Tag.name)


# The global and list searches match search_key(...) of these expressions (services/text_search.py).
_t = Company.__table__
search_key_index(_t, "company_name_trgm_idx", _t.c.name)
search_key_index(_t, "company_industry_trgm_idx", _t.c.industry)
search_key_index(_t, "company_city_trgm_idx", _t.c.city)
search_key_index(_t, "company_website_trgm_idx", _t.c.website)
name_order_index(_t, "company_name_order_idx", _t.c.name)
# SQLite's twin of the one above (the global search; the list's index below leads with org_id).
sqlite_name_order_index(_t, "company_name_order_sqlite_idx", _t.c.name)
# The list's default order (sort_fields "name", then id) and its total: read in order and counted
# from the index instead of sorting and counting every live company of the organisation.
Index(
    "ix_companies_org_lower_name_live",
    _t.c.org_id,
    func.lower(_t.c.name),
    _t.c.id,
    postgresql_where=text("deleted_at IS NULL"),
    sqlite_where=text("deleted_at IS NULL"),
)
# The forms' duplicate warning compares lower(email) and looks up the typed phone's key
# (Matcher.candidates; migration 0042).
Index("ix_companies_org_email_key", _t.c.org_id, func.lower(_t.c.email))
phone_key_index(_t, "company_phone_key_idx")
del _t

"""Contacts (people) and their links to companies."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, CustomValuesMixin, IdMixin, OrgScopedMixin, RecordMixin, TimestampMixin
from crm_web.models.company import Company
from crm_web.models.mixins import (
    AddressMixin,
    full_name,
    live_index,
    name_order_index,
    phone_key_index,
    search_key,
    search_key_index,
    sqlite_name_order_index,
    surname_index,
    trash_index,
    trigram_index,
)
from crm_web.models.tag import Tag, contact_tags

CONTACT_STATUSES = [
    ("lead", "Lead"),
    ("prospect", "Prospect"),
    ("customer", "Customer"),
    ("churned", "Churned"),
    ("inactive", "Inactive"),
]
LEAD_SOURCES = [
    ("website", "Website"),
    ("referral", "Referral"),
    ("event", "Event"),
    ("cold_call", "Cold call"),
    ("email_campaign", "Email campaign"),
    ("social", "Social media"),
    ("partner", "Partner"),
    ("other", "Other"),
]


class Contact(RecordMixin, CustomValuesMixin, AddressMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_org_last_first", "org_id", "last_name", "first_name"),
        Index("ix_contacts_org_email", "org_id", "email"),
        Index("ix_contacts_org_company", "org_id", "primary_company_id"),
        Index("ix_contacts_org_last_activity", "org_id", "last_activity_at"),
        trash_index("contacts"),
        live_index("contacts", "status"),
        # The city after the status: a list filtered by status and a city substring counts its bounded
        # total from the index alone (the ILIKE tested on its entries), not from up to 10,000 matches'
        # rows read across the table (migration 0039).
        live_index("contacts", "status", "city"),
        trigram_index("contact_name_search_idx", "first_name", "last_name"),
        trigram_index("contact_email_search_idx", "email"),
    )

    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    mobile: Mapped[str | None] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(150))
    department: Mapped[str | None] = mapped_column(String(150))
    status: Mapped[str] = mapped_column(String(20), default="prospect")
    lead_source: Mapped[str | None] = mapped_column(String(30))
    linkedin_url: Mapped[str | None] = mapped_column(String(255))
    birthday: Mapped[date | None]
    notes: Mapped[str | None] = mapped_column(Text)
    do_not_contact: Mapped[bool] = mapped_column(default=False)
    last_activity_at: Mapped[datetime | None]
    primary_company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))

    owner = relationship("User", foreign_keys="Contact.owner_id", lazy="raise_on_sql")
    primary_company: Mapped[Company | None] = relationship(lazy="raise_on_sql")
    tags: Mapped[list[Tag]] = relationship(secondary=contact_tags, lazy="raise_on_sql", order_by=Tag.name)
    company_links: Mapped[list[ContactCompany]] = relationship(
        back_populates="contact", lazy="raise_on_sql", cascade="all, delete-orphan"
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


# The global and list searches match search_key(...) of these expressions (services/text_search.py).
_t = Contact.__table__
search_key_index(_t, "contact_name_trgm_idx", full_name(_t.c.first_name, _t.c.last_name))
search_key_index(_t, "contact_email_trgm_idx", _t.c.email)
# Duplicate-email checks compare lower(email) (ContactService.duplicate_of, the contact page's twin).
Index("ix_contacts_org_email_key", _t.c.org_id, func.lower(_t.c.email))
name_order_index(_t, "contact_name_order_idx", full_name(_t.c.first_name, _t.c.last_name))
surname_index(_t, "contact_surname_idx", _t.c.last_name, full_name(_t.c.first_name, _t.c.last_name))
# SQLite's twins of the two above.
sqlite_name_order_index(_t, "contact_name_order_sqlite_idx", full_name(_t.c.first_name, _t.c.last_name))
sqlite_name_order_index(
    _t, "contact_surname_sqlite_idx", full_name(_t.c.first_name, _t.c.last_name), surname=_t.c.last_name
)
# A searched list's people whose last name is the query, in the list's order (name: last, first, id),
# a page of index entries (BaseService._searched_page; migration 0040).
Index(
    "contact_surname_list_idx",
    _t.c.org_id,
    search_key(_t.c.last_name),
    _t.c.last_name,
    _t.c.first_name,
    _t.c.id,
    postgresql_where=text("deleted_at IS NULL"),
).ddl_if(dialect="postgresql")
# The forms' duplicate warning looks up the typed phone's key (Matcher.candidates; migration 0042).
phone_key_index(_t, "contact_phone_key_idx")
del _t


class ContactCompany(IdMixin, TimestampMixin, OrgScopedMixin, Base):
    """A contact associated with a company beyond its primary one (e.g. board member)."""

    __tablename__ = "contact_companies"
    __table_args__ = (
        UniqueConstraint("contact_id", "company_id", name="uq_contact_companies_contact_company"),
        Index("ix_contact_companies_company", "company_id"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    role: Mapped[str | None] = mapped_column(String(120))

    contact: Mapped[Contact] = relationship(back_populates="company_links", lazy="raise_on_sql")
    company: Mapped[Company] = relationship(lazy="raise_on_sql")

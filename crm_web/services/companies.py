"""Companies: the list (contact count and open deal value per row), the detail page (fields,
stats, contacts with roles and counts, deals, history), writes, soft delete and export.

Query budgets: the list is three statements (count, rows with their annotations, tags); the
detail page is seven (company with owner and tags, one aggregate of its deals and contacts, deals,
history, the company's contacts with their annotations and tags, the activity timeline); the
contacts panel alone is three (company, contacts, tags). Soft-deleting a company keeps its
contacts and deals: nothing cascades.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, desc, func, or_, select, union
from sqlalchemy.orm import joinedload, selectinload

from crm_web.entities import COMPANY
from crm_web.models import COMPANY_SIZES, Activity, Company, Contact, ContactCompany, Deal
from crm_web.services.base import BaseService
from crm_web.services.currencies import in_org_currency_sql, org_currency_sql, unconverted_sql
from crm_web.services.history import HistoryItem
from crm_web.services.sql import AnySelect, sorted_unindexed
from crm_web.services.stats.units import money

DETAIL_DEALS_LIMIT = 50
COMPANY_CONTACTS_LIMIT = 200


@dataclass
class CompanyRow:
    """One list row: the company and its annotated numbers."""

    company: Company
    contact_count: int
    open_deal_value: Decimal  # in the organisation's currency
    unconverted_deals: int = 0  # open deals in a currency without a rate: not in the value


@dataclass
class CompanyStats:
    deal_count: int
    open_deals: int
    won_deals: int
    lost_deals: int
    total_deal_value: Decimal
    won_deal_value: Decimal
    contact_count: int
    currency: str = ""  # the organisation's: the values above are converted into it
    unconverted_deals: int = 0  # in a currency without a rate: counted, not in the values


@dataclass
class CompanyContact:
    """A contact of a company: primary (its primary company) and/or associated with a role."""

    contact: Contact
    is_primary: bool
    role: str | None
    deal_count: int
    activity_count: int


@dataclass
class CompanyDetail:
    company: Company
    stats: CompanyStats
    deals: list[Deal]
    members: list[CompanyContact]
    timeline: list[Activity]
    history: list[HistoryItem]


def is_contact_of(org_id: uuid.UUID, company_id: uuid.UUID) -> ColumnElement[bool]:
    """A contact belongs to a company as its primary company or through an association row.

    As one IN over the union of both index lookups (ix_contacts_org_company and
    ix_contact_companies_company), whose ids the contacts' primary key then fetches: an OR of the
    two conditions is served by no index, so it filtered every contact of the organisation."""
    primary = select(Contact.id).where(Contact.org_id == org_id, Contact.primary_company_id == company_id)
    associated = select(ContactCompany.contact_id).where(ContactCompany.company_id == company_id)
    return Contact.id.in_(union(primary, associated))


def contact_count_expr(org_id: uuid.UUID, company_id: Any = Company.id) -> ColumnElement[int]:
    """Live contacts of a company (by default the enclosing select's): those with it as primary
    company plus those associated with it that have another (or no) primary company — the same
    set as is_contact_of.

    Two index lookups (ix_contacts_org_company, ix_contact_companies_company) instead of one
    count over is_contact_of, whose OR no index serves: that scanned every contact per company row."""
    live = (Contact.org_id == org_id, Contact.deleted_at.is_(None))
    primary = (
        select(func.count(Contact.id))
        .where(*live, Contact.primary_company_id == company_id)
        .correlate(Company)
        .scalar_subquery()
    )
    # (contact_id, company_id) is unique, so no contact is counted twice. Read from the company's
    # association rows, each contact then by its primary key: as a join, SQLite (no statistics) read
    # every live contact of the organisation for each company row instead.
    associated = (
        select(func.count(ContactCompany.contact_id))
        .where(
            ContactCompany.company_id == company_id,
            select(Contact.id)
            .where(
                Contact.id == ContactCompany.contact_id,
                *live,
                or_(Contact.primary_company_id.is_(None), Contact.primary_company_id != company_id),
            )
            .correlate(ContactCompany, Company)
            .exists(),
        )
        .correlate(Company)
        .scalar_subquery()
    )
    return primary + associated


def open_deal_value_expr(org_id: uuid.UUID) -> ColumnElement[Decimal]:
    """Sum of the enclosing company's live open deals in the organisation's currency, deals in a
    currency without a rate left out (a correlated scalar subquery; services/currencies.py). The
    company's deals come from ix_deals_org_company and the open live ones are summed: with the status and
    deleted_at in the WHERE, SQLite (no statistics) chose the partial ix_deals_org_status_live and read
    every open deal of the organisation for each company row."""
    counted = and_(Deal.status == "open", Deal.deleted_at.is_(None))
    converted = in_org_currency_sql(org_id, Deal.value, Deal.currency)
    return (
        select(func.coalesce(func.sum(case((counted, converted), else_=0)), 0))
        .where(Deal.org_id == org_id, Deal.company_id == Company.id)
        .correlate(Company)
        .scalar_subquery()
    )


def open_deals_unconverted_expr(org_id: uuid.UUID) -> ColumnElement[int]:
    """How many of the enclosing company's live open deals are in a currency without a rate (left out of
    `open_deal_value_expr`, so the list can say so): a correlated count read like that sum, from the
    company's entries in ix_deals_org_company (the status in the WHERE made SQLite read every open deal
    of the organisation for each row)."""
    left_out = and_(Deal.status == "open", Deal.deleted_at.is_(None), unconverted_sql(org_id, Deal.currency))
    return (
        select(func.count(case((left_out, 1))))
        .where(Deal.org_id == org_id, Deal.company_id == Company.id)
        .correlate(Company)
        .scalar_subquery()
    )


class CompanyService(BaseService[Company]):
    """Org-scoped companies; a deleted company's contacts and deals stay where they are."""

    entity = COMPANY
    EMPTY_OWNER_IS_ME = True
    DEFAULT_SORT = "name"
    WRITABLE_FIELDS = frozenset(
        {
            "name",
            "website",
            "email",
            "phone",
            "industry",
            "size",
            "employee_count",
            "annual_revenue",
            "description",
            "street",
            "city",
            "state",
            "postal_code",
            "country",
            "owner_id",
        }
    )

    def sort_fields(self) -> Mapping[str, Any]:
        return {
            "name": func.lower(Company.name),
            "industry": func.lower(Company.industry),
            "city": func.lower(Company.city),
            "size": Company.employee_count,
            "contacts": contact_count_expr(self.org_id),
            "open_value": open_deal_value_expr(self.org_id),
        }

    def optimized_query(self) -> AnySelect:
        # Joined (not selectin) tags: the detail page's budget has room for one statement here.
        return self.scoped().options(joinedload(Company.owner), joinedload(Company.tags))

    # --- reading -----------------------------------------------------------------------

    def page_rows(self, found: Any, order: Sequence[Any]) -> list[CompanyRow]:
        stmt = self._rows_query().options(selectinload(Company.tags)).where(Company.id.in_(found))
        return list(self.export_stream(stmt.order_by(*order)))

    def export_query(self) -> AnySelect:
        return self._rows_query()

    def _rows_query(self) -> AnySelect:
        return self.scoped(
            select(
                Company,
                contact_count_expr(self.org_id),
                open_deal_value_expr(self.org_id),
                open_deals_unconverted_expr(self.org_id),
            )
        ).options(joinedload(Company.owner))

    def export_stream(self, stmt: AnySelect) -> Iterator[CompanyRow]:
        """Rows with their contact count and open deal value."""
        for company, contacts, open_value, unconverted in self.session.execute(stmt):
            yield CompanyRow(company, int(contacts or 0), money(open_value), int(unconverted or 0))

    def stats(self, company_id: uuid.UUID) -> CompanyStats:
        """Deal counts and values and the count of contacts (primary + associated): one statement."""
        won, lost, open_ = (Deal.status == "won"), (Deal.status == "lost"), (Deal.status == "open")
        converted = in_org_currency_sql(self.org_id, Deal.value, Deal.currency)
        deal_row = self.session.execute(
            select(
                func.count(Deal.id),
                func.coalesce(func.sum(case((open_, 1), else_=0)), 0),
                func.coalesce(func.sum(case((won, 1), else_=0)), 0),
                func.coalesce(func.sum(case((lost, 1), else_=0)), 0),
                func.coalesce(func.sum(converted), 0),
                func.coalesce(func.sum(case((won, converted), else_=0)), 0),
                func.coalesce(func.sum(case((unconverted_sql(self.org_id, Deal.currency), 1), else_=0)), 0),
                org_currency_sql(self.org_id),
                contact_count_expr(self.org_id, company_id),
            ).where(Deal.org_id == self.org_id, Deal.company_id == company_id, Deal.deleted_at.is_(None))
        ).one()
        deals, open_deals, won_deals, lost_deals, total_value, won_value, unconverted, currency, contacts = deal_row
        return CompanyStats(
            deal_count=int(deals),
            open_deals=int(open_deals),
            won_deals=int(won_deals),
            lost_deals=int(lost_deals),
            total_deal_value=money(total_value),
            won_deal_value=money(won_value),
            contact_count=int(contacts or 0),
            currency=currency or "",
            unconverted_deals=int(unconverted),
        )

    def detail(self, company_id: uuid.UUID) -> CompanyDetail:
        """Everything the company page shows, in seven statements whatever the company's size: its
        contacts and activity timeline are part of the page (a panel loaded after it would pay
        for a request of its own)."""
        company = self.get(company_id)
        stats = self.stats(company_id)
        deals = list(
            self.session.scalars(
                select(Deal)
                .where(Deal.org_id == self.org_id, Deal.company_id == company_id)
                .options(joinedload(Deal.stage), joinedload(Deal.contact), joinedload(Deal.owner))
                .order_by(sorted_unindexed(Deal.created_at, self.dialect).desc(), Deal.id)
                .limit(DETAIL_DEALS_LIMIT)
            )
        )
        return CompanyDetail(
            company=company,
            stats=stats,
            deals=deals,
            members=self.members(company_id),
            timeline=self.activity_timeline(company_id),
            history=self.readable_history(company_id),
        )

    def contacts(
        self, company_id: uuid.UUID, *, limit: int = COMPANY_CONTACTS_LIMIT
    ) -> tuple[Company, list[CompanyContact]]:
        """The company and its contacts: three statements (company, contacts, tags)."""
        company = self.get(company_id, query=self.scoped())
        return company, self.members(company_id, limit=limit)

    def members(self, company_id: uuid.UUID, *, limit: int = COMPANY_CONTACTS_LIMIT) -> list[CompanyContact]:
        """The contacts of a company found in this organisation (primary first, then associated with
        their role), each with its tags and deal and activity counts: two statements."""
        role = (
            select(ContactCompany.role)
            .where(ContactCompany.contact_id == Contact.id, ContactCompany.company_id == company_id)
            .limit(1)
            .correlate(Contact)
            .scalar_subquery()
        )
        deal_count = (  # org_id first: ix_deals_org_contact
            select(func.count(Deal.id))
            .where(Deal.org_id == self.org_id, Deal.contact_id == Contact.id, Deal.deleted_at.is_(None))
            .correlate(Contact)
            .scalar_subquery()
        )
        activity_count = (
            select(func.count(Activity.id))
            .where(Activity.contact_id == Contact.id, Activity.deleted_at.is_(None))
            .correlate(Contact)
            .scalar_subquery()
        )
        is_primary = Contact.primary_company_id == company_id
        rows = self.session.execute(
            select(Contact, role, deal_count, activity_count)
            .where(self.of_org(Contact), is_contact_of(self.org_id, company_id))
            .options(joinedload(Contact.primary_company), joinedload(Contact.owner), selectinload(Contact.tags))
            .order_by(
                desc(case((is_primary, 1), else_=0)),
                func.lower(Contact.last_name),
                func.lower(Contact.first_name),
                Contact.id,
            )
            .limit(limit)
        ).all()
        return [
            CompanyContact(contact, contact.primary_company_id == company_id, role_, int(deals or 0), int(acts or 0))
            for contact, role_, deals, acts in rows
        ]

    # --- writing -----------------------------------------------------------------------

    def clean(self, values: dict[str, Any], obj: Company | None = None) -> dict[str, Any]:
        """A company needs a name; size is one of the known bands; the owner is a user of the org."""
        errors: dict[str, str] = {}
        for key, value in list(values.items()):
            if isinstance(value, str):
                values[key] = value.strip() or None
        if ("name" in values or obj is None) and not values.get("name"):
            errors["name"] = "A company needs a name."
        if values.get("size") and values["size"] not in COMPANY_SIZES:
            errors["size"] = "Choose one of the listed sizes."
        for number in ("employee_count", "annual_revenue"):
            if values.get(number) is not None and values[number] < 0:
                errors[number] = "Cannot be negative."
        self.refuse_errors(values, errors)
        return values

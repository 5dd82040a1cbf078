"""Contacts: the list (annotated counts, search, filters), detail, writes, bulk actions and export.

Query budget of the list: one COUNT, one SELECT of the page (primary company and owner joined,
deal and activity counts as correlated scalar subqueries) and one SELECT IN for the tags,
whatever the page size, filter or search.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased, contains_eager, joinedload, selectinload

from crm_web.entities import CONTACT
from crm_web.errors import NotFound, ValidationError
from crm_web.models import (
    CONTACT_STATUSES,
    LEAD_SOURCES,
    Activity,
    Company,
    Contact,
    ContactCompany,
    Deal,
    User,
)
from crm_web.services.base import BaseService
from crm_web.services.sql import AnySelect, sorted_unindexed


@dataclass
class ContactRow:
    """One list row: the contact (primary company, owner and tags loaded) and its counts."""

    contact: Contact
    deal_count: int
    activity_count: int

    @property
    def id(self) -> uuid.UUID:
        return self.contact.id


@dataclass
class ContactDetail:
    contact: Contact
    deals: list[Deal]
    links: list[ContactCompany] = field(default_factory=list)
    duplicate: Twin | None = None
    history: list[Any] = field(default_factory=list)
    timeline: list[Activity] = field(default_factory=list)


class Twin(NamedTuple):
    """Another live contact with the same email (the duplicate warning links to it)."""

    id: uuid.UUID
    full_name: str


def _deal_count() -> Any:
    return (
        select(func.count(Deal.id))
        # The org condition (always true: a deal's contact is in its org) lets ix_deals_org_contact
        # seek on both columns instead of scanning the whole org's part of the index per row.
        .where(Deal.org_id == Contact.org_id, Deal.contact_id == Contact.id, Deal.deleted_at.is_(None))
        .correlate(Contact)
        .scalar_subquery()
        .label("deal_count")
    )


def _activity_count() -> Any:
    return (
        select(func.count(Activity.id))
        .where(Activity.contact_id == Contact.id, Activity.deleted_at.is_(None))
        .correlate(Contact)
        .scalar_subquery()
        .label("activity_count")
    )


class ContactService(BaseService[Contact]):
    """Contacts of one organisation: soft-deleted, owned, tagged, linked to companies."""

    entity = CONTACT
    SORT_FIELDS: ClassVar[dict[str, Any]] = {
        "name": [Contact.last_name, Contact.first_name],
        "email": Contact.email,
        "company": Company.name,
        "owner": User.name,
        "status": Contact.status,
        "deals": _deal_count(),
        "activities": _activity_count(),
        "last_activity": Contact.last_activity_at,
    }
    DEFAULT_SORT = "name"
    # Fields the detail page edits in place, one at a time.
    INLINE_FIELDS: ClassVar[tuple[str, ...]] = (
        "email",
        "phone",
        "mobile",
        "title",
        "department",
        "status",
        "lead_source",
        "city",
        "country",
    )
    WRITABLE_FIELDS = frozenset(
        {
            *INLINE_FIELDS,
            "first_name",
            "last_name",
            "linkedin_url",
            "birthday",
            "notes",
            "do_not_contact",
            "primary_company_id",
            "owner_id",
            "street",
            "state",
            "postal_code",
        }
    )

    # --- list ----------------------------------------------------------------------

    def _rows_query(self) -> AnySelect:
        return (
            self.scoped(select(Contact, _deal_count(), _activity_count()))
            .outerjoin(Contact.primary_company)
            .outerjoin(Contact.owner)
            .options(contains_eager(Contact.primary_company), contains_eager(Contact.owner), selectinload(Contact.tags))
        )

    def list_ids(self) -> AnySelect:
        # The joins only serve the company/owner sorts; PostgreSQL drops them when the order does not use them.
        return self.scoped(select(Contact.id)).outerjoin(Contact.primary_company).outerjoin(Contact.owner)

    def page_rows(self, found: Any, order: Sequence[Any]) -> list[ContactRow]:
        return list(self.export_stream(self._rows_query().where(Contact.id.in_(found)).order_by(*order)))

    def export_query(self) -> AnySelect:
        return self._rows_query()

    def export_stream(self, stmt: AnySelect) -> Iterator[ContactRow]:
        """Rows with their deal and activity counts."""
        for contact, deals, activities in self.session.execute(stmt):
            yield ContactRow(contact, deals or 0, activities or 0)

    # --- detail --------------------------------------------------------------------

    def edit_query(self) -> AnySelect:
        return self.optimized_query()

    def optimized_query(self) -> AnySelect:
        return self.scoped().options(
            joinedload(Contact.primary_company),
            joinedload(Contact.owner),
            selectinload(Contact.tags),
        )

    def detail(self, contact_id: uuid.UUID) -> ContactDetail:
        """The contact (with any live email twin), companies, tags, deals, activity timeline and
        history: 6 statements."""
        twin = aliased(Contact)

        def twin_column(column: Any) -> Any:
            return (
                select(column)
                .where(
                    twin.org_id == Contact.org_id,
                    twin.id != Contact.id,
                    twin.deleted_at.is_(None),
                    Contact.email.is_not(None),
                    func.lower(twin.email) == func.lower(Contact.email),
                )
                .order_by(twin.created_at, twin.id)
                .limit(1)
                .correlate(Contact)
                .scalar_subquery()
            )

        stmt = (
            self.optimized_query()
            .options(selectinload(Contact.company_links).joinedload(ContactCompany.company))
            .add_columns(twin_column(twin.id), twin_column(twin.first_name + " " + twin.last_name))
        )
        row = self.session.execute(stmt.where(Contact.id == contact_id)).unique().one_or_none()
        if row is None:
            raise NotFound("That contact does not exist or was deleted.")
        contact, twin_id, twin_name = row
        deals = self.session.scalars(
            select(Deal)
            .where(Deal.org_id == self.org_id, Deal.contact_id == contact.id)
            .options(joinedload(Deal.stage))
            .order_by(sorted_unindexed(Deal.created_at, self.dialect).desc())
        ).all()
        links = [link for link in contact.company_links if link.company is not None]
        duplicate = Twin(twin_id, twin_name.strip()) if twin_id else None
        history = self.readable_history(contact.id)
        return ContactDetail(contact, list(deals), links, duplicate, history, self.activity_timeline(contact.id))

    def duplicate_of(self, email: str | None, *, exclude_id: uuid.UUID | None = None) -> Contact | None:
        """Another live contact of the organisation with this email (case-insensitive), if any."""
        if not email or not email.strip():
            return None
        stmt = self.scoped().where(func.lower(Contact.email) == email.strip().lower())
        if exclude_id is not None:
            stmt = stmt.where(Contact.id != exclude_id)
        return self.session.scalars(stmt.order_by(Contact.created_at).limit(1)).first()

    # --- writes --------------------------------------------------------------------

    def clean(self, values: dict[str, Any], obj: Contact | None = None) -> dict[str, Any]:
        """Names trimmed, first name required, email lower-cased, company and owner from this org."""
        errors: dict[str, str] = {}
        for key in ("first_name", "last_name", "email", "phone", "mobile", "title", "department"):
            if isinstance(values.get(key), str):
                values[key] = values[key].strip()
        if "first_name" in values and not values["first_name"]:
            errors["first_name"] = "First name is required."
        if values.get("email"):
            values["email"] = values["email"].lower()
        elif "email" in values:
            values["email"] = None
        if "status" in values and values["status"] not in dict(CONTACT_STATUSES):
            errors["status"] = "Choose a valid status."
        if values.get("lead_source") and values["lead_source"] not in dict(LEAD_SOURCES):
            errors["lead_source"] = "Choose a valid source."
        if values.get("primary_company_id") and not self.session.scalar(
            select(
                exists().where(
                    Company.id == values["primary_company_id"],
                    Company.org_id == self.org_id,
                    Company.deleted_at.is_(None),
                )
            )
        ):
            errors["primary_company_id"] = "That company does not exist."
        self.refuse_errors(values, errors)
        return values

    def update_field(self, contact_id: uuid.UUID, name: str, value: Any, *, original: str | None = None) -> Contact:
        """One field edited in place. `original` is the value the user saw: if someone else changed THIS
        field since, Conflict; saves of other fields meanwhile do not count. None: last write wins."""
        if name not in self.INLINE_FIELDS:
            raise ValidationError(f"{name!r} cannot be edited in place.", {})
        expected = {name: original} if original is not None else None
        return self.update(contact_id, expected_values=expected, **{name: value})

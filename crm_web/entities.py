"""The entity registry: one declaration per record type, read by everything that treats records alike.

The trash, tags, global search, the search hit links, activity links, the filter builder, the CSV
exports and the organisation counts all iterate `ENTITIES` (or look one up with `entity(name)`)
instead of keeping their own per-type tables. Adding a field to a list's search or to a CSV
export is one edit here. See docs/design.md for what a new entity touches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Table, func

from crm_web.filters.types import FieldType, FilterField
from crm_web.formatting import choice_items, choice_label, spreadsheet_value
from crm_web.models import (
    ACTIVITY_PRIORITIES,
    ACTIVITY_STATUSES,
    ACTIVITY_TYPES,
    COMPANY_SIZES,
    CONTACT_STATUSES,
    CURRENCIES,
    DEAL_STATUSES,
    LEAD_SOURCES,
    LEAD_STATUSES,
    Activity,
    Company,
    Contact,
    Deal,
    Lead,
    PipelineStage,
    Tag,
    company_tags,
    contact_tags,
    deal_tags,
    lead_tags,
)
from crm_web.models.mixins import full_name
from crm_web.services.rotting import days_in_stage_sql, rotting_sql
from crm_web.services.trash_rules import refresh_contacts_of_activities, rehome_deals

F = FilterField


@dataclass(frozen=True)
class CsvColumn:
    """One column of an entity's CSV export: its header and how a value is read from an export row
    (the row type is what the entity service's `export_rows` yields)."""

    header: str
    get: Callable[[Any], Any]
    choices: str = ""  # a stored choice of this kind (formatting.CHOICES): exported as its label

    def export(self, row: Any) -> Any:
        """The cell a person reads: a choice's label, else the value."""
        value = self.get(row)
        return choice_label(value, self.choices) if self.choices and value else value

    def parse(self, cell: str | None) -> str | None:
        """An imported cell back to the stored value: a choice's value or its label (any case)."""
        text = (cell or "").strip()
        if not self.choices or not text:
            return text or None
        for value, label in choice_items(self.choices):
            if text.lower() in (value.lower(), label.lower()):
                return value
        return text


@dataclass(frozen=True, eq=False)
class GlobalSearch:
    """How the header's global search shows an entity: group title, hit label and detail, and the
    expressions it matches (each needs a trigram index: tests/test_search.py checks)."""

    title: str
    label: Any
    detail: Any
    searched: tuple[Any, ...]
    detail_choices: str = ""  # the detail is a stored choice of this kind: shown as its label


@dataclass(frozen=True, eq=False)
class TrashRule:
    """What the trash lists and how a restore or purge treats the rows.

    - `label`: the record's display name as SQL (listed and searched in the trash);
    - `rehome`: before a restore, moves rows whose parent is gone (deals without a live stage);
      returns (relocated items, per-id history changes);
    - `dependents`: before a restore or purge, reads what the rows' change affects and returns the
      function to run after it (activities: their contacts' last activity).
    """

    label: Any
    rehome: Callable[..., Any] | None = None
    dependents: Callable[..., Callable[[], None]] | None = None


@dataclass(frozen=True, eq=False)
class Entity:
    """One record type: names, model, detail page, filters, search, tags, trash, CSV, links."""

    name: str  # "contact": URLs, history, trash references, tag and timeline links
    label: str  # "Contact"
    plural: str  # "contacts": messages, blueprint, organisation counts
    model: Any
    # The filter whitelist: the only fields a URL can filter on, and how. The names appear in shared
    # links: renaming one breaks bookmarks.
    filters: Mapping[str, FilterField]
    trash: TrashRule
    # The list's search box: the words match any of these (services/text_search); `surname` ranks
    # a person whose last name is the query right after names starting with it.
    searched: tuple[Any, ...] = ()
    surname: Any = None
    global_search: GlobalSearch | None = None
    detail_endpoint: str | None = None  # "contacts.detail"
    tag_table: Table | None = None  # the link table, when the entity is taggable
    csv: tuple[CsvColumn, ...] = ()
    # The column on Activity that links an activity to a record of this entity ("contact_id").
    activity_link: str | None = None
    # In the organisation counts of the internal API (OrgStats, and a column of UsageRecord each).
    counted: bool = False
    custom_fields: Mapping[str, FilterField] = field(default_factory=dict)

    @property
    def id_arg(self) -> str:
        """The URL argument naming one record: "contact_id"."""
        return f"{self.name}_id"

    @property
    def tag_column(self) -> str:
        return f"{self.name}_id"

    @property
    def taggable(self) -> bool:
        return self.tag_table is not None

    def filter_fields(self) -> Mapping[str, FilterField]:
        """The filter whitelist: the declared fields, then any custom fields (the seam for issue
        "custom fields": they join here and nowhere else)."""
        if not self.custom_fields:
            return self.filters
        return {**self.filters, **self.custom_fields}

    def csv_header(self, currency: str = "") -> list[str]:
        """The headers; "{currency}" in one is the organisation's currency (its sums are converted into it)."""
        return [column.header.replace("{currency}", currency) for column in self.csv]

    def csv_values(self, row: Any) -> list[Any]:
        return [column.export(row) for column in self.csv]


def _person_label(model: Any) -> ColumnElement[str]:
    return func.trim(model.first_name + " " + func.coalesce(model.last_name, ""))


def _name(obj: Any) -> str:
    return obj.name if obj is not None else ""


def _iso(value: Any) -> str:
    """A date or a time as spreadsheets read it (csv_export.spreadsheet_value)."""
    return spreadsheet_value(value) if value else ""


def _tags(obj: Any) -> str:
    return ", ".join(t.name for t in obj.tags)


CONTACT = Entity(
    name="contact",
    counted=True,
    label="Contact",
    plural="contacts",
    model=Contact,
    filters={
        "name": F.text("Name", Contact.first_name, Contact.last_name),
        "email": F.text("Email", Contact.email),
        "phone": F.text("Phone", Contact.phone, Contact.mobile),
        "title": F.text("Job title", Contact.title),
        "department": F.text("Department", Contact.department),
        "company": F.text("Company", Company.name, via=Contact.primary_company),
        "city": F.text("City", Contact.city),
        "country": F.text("Country", Contact.country),
        "status": F.choice("Status", Contact.status, CONTACT_STATUSES),
        "source": F.choice("Lead source", Contact.lead_source, LEAD_SOURCES),
        "owner": F.uuid("Owner", Contact.owner_id),
        "doNotContact": F.boolean("Do not contact", Contact.do_not_contact),
        "birthday": F.date("Birthday", Contact.birthday),
        "lastActivity": F.datetime("Last activity", Contact.last_activity_at),
        "created": F.datetime("Created", Contact.created_at),
        "updated": F.datetime("Updated", Contact.updated_at),
        "tags": F.tag("Tags", Contact.tags, Tag.id),
        "import": F.uuid("Import", Contact.import_id),  # the records a CSV import created
    },
    trash=TrashRule(label=_person_label(Contact)),
    searched=(full_name(Contact.first_name, Contact.last_name), Contact.email),
    surname=Contact.last_name,
    global_search=GlobalSearch(
        title="Contacts",
        label=full_name(Contact.first_name, Contact.last_name),
        detail=Contact.email,
        searched=(full_name(Contact.first_name, Contact.last_name), Contact.email),
    ),
    detail_endpoint="contacts.detail",
    tag_table=contact_tags,
    activity_link="contact_id",
    # Rows are ContactRow (services/contacts.py).
    csv=(
        CsvColumn("First name", lambda r: r.contact.first_name),
        CsvColumn("Last name", lambda r: r.contact.last_name),
        CsvColumn("Email", lambda r: r.contact.email),
        CsvColumn("Phone", lambda r: r.contact.phone),
        CsvColumn("Title", lambda r: r.contact.title),
        CsvColumn("Company", lambda r: _name(r.contact.primary_company)),
        CsvColumn("Owner", lambda r: _name(r.contact.owner)),
        CsvColumn("Status", lambda r: r.contact.status, choices="contact_status"),
        CsvColumn("Tags", lambda r: _tags(r.contact)),
        CsvColumn("Deals", lambda r: r.deal_count),
        CsvColumn("Activities", lambda r: r.activity_count),
        CsvColumn("Last activity", lambda r: _iso(r.contact.last_activity_at)),
    ),
)

COMPANY = Entity(
    name="company",
    counted=True,
    label="Company",
    plural="companies",
    model=Company,
    filters={
        "name": F.text("Name", Company.name),
        "email": F.text("Email", Company.email),
        "phone": F.text("Phone", Company.phone),
        "website": F.text("Website", Company.website),
        "industry": F.text("Industry", Company.industry),
        "city": F.text("City", Company.city),
        "country": F.text("Country", Company.country),
        "size": F.choice("Size", Company.size, COMPANY_SIZES),
        "employees": F.number("Employees", Company.employee_count),
        "revenue": F.money("Annual revenue", Company.annual_revenue),
        "owner": F.uuid("Owner", Company.owner_id),
        "created": F.datetime("Created", Company.created_at),
        "updated": F.datetime("Updated", Company.updated_at),
        "tags": F.tag("Tags", Company.tags, Tag.id),
        "import": F.uuid("Import", Company.import_id),  # the records a CSV import created
    },
    trash=TrashRule(label=Company.name),
    searched=(Company.name, Company.industry, Company.city, Company.website),
    global_search=GlobalSearch(title="Companies", label=Company.name, detail=Company.city, searched=(Company.name,)),
    detail_endpoint="companies.detail",
    tag_table=company_tags,
    activity_link="company_id",
    # Rows are CompanyRow (services/companies.py); the owner column is the owner's email.
    csv=(
        CsvColumn("Name", lambda r: r.company.name),
        CsvColumn("Industry", lambda r: r.company.industry),
        CsvColumn("Website", lambda r: r.company.website),
        CsvColumn("Email", lambda r: r.company.email),
        CsvColumn("Phone", lambda r: r.company.phone),
        CsvColumn("Size", lambda r: r.company.size),
        CsvColumn("Employees", lambda r: r.company.employee_count),
        CsvColumn("Annual revenue", lambda r: r.company.annual_revenue),
        CsvColumn("City", lambda r: r.company.city),
        CsvColumn("Country", lambda r: r.company.country),
        CsvColumn("Owner", lambda r: r.company.owner.email if r.company.owner else None),
        CsvColumn("Contacts", lambda r: r.contact_count),
        CsvColumn("Open deal value ({currency})", lambda r: r.open_deal_value),
        CsvColumn("Created", lambda r: r.company.created_at),
    ),
)

LEAD = Entity(
    name="lead",
    counted=True,
    label="Lead",
    plural="leads",
    model=Lead,
    filters={
        "name": F.text("Name", Lead.first_name, Lead.last_name),
        "email": F.text("Email", Lead.email),
        "phone": F.text("Phone", Lead.phone),
        "title": F.text("Job title", Lead.title),
        "company": F.text("Company", Lead.company_name),
        "website": F.text("Website", Lead.website),
        "status": F.choice("Status", Lead.status, LEAD_STATUSES),
        "source": F.choice("Source", Lead.source, LEAD_SOURCES),
        "score": F.number("Score", Lead.score),
        "value": F.money("Estimated value", Lead.estimated_value),
        "owner": F.uuid("Owner", Lead.owner_id),
        "converted": F.datetime("Converted", Lead.converted_at),
        "created": F.datetime("Created", Lead.created_at),
        "updated": F.datetime("Updated", Lead.updated_at),
        "tags": F.tag("Tags", Lead.tags, Tag.id),
        "import": F.uuid("Import", Lead.import_id),  # the records a CSV import created
    },
    trash=TrashRule(label=_person_label(Lead)),
    # full_name: the same expression as the trigram index on leads, so the search can use it.
    searched=(full_name(Lead.first_name, Lead.last_name), Lead.email, Lead.company_name),
    surname=Lead.last_name,
    global_search=GlobalSearch(
        title="Leads",
        label=full_name(Lead.first_name, Lead.last_name),
        detail=Lead.company_name,
        searched=(full_name(Lead.first_name, Lead.last_name), Lead.email, Lead.company_name),
    ),
    detail_endpoint="leads.detail",
    tag_table=lead_tags,
    activity_link="lead_id",
    # Rows are Lead with its owner loaded; the owner column is the owner's email.
    csv=(
        CsvColumn("First name", lambda r: r.first_name),
        CsvColumn("Last name", lambda r: r.last_name),
        CsvColumn("Email", lambda r: r.email),
        CsvColumn("Phone", lambda r: r.phone),
        CsvColumn("Title", lambda r: r.title),
        CsvColumn("Company", lambda r: r.company_name),
        CsvColumn("Website", lambda r: r.website),
        CsvColumn("Source", lambda r: r.source, choices="lead_source"),
        CsvColumn("Status", lambda r: r.status, choices="lead_status"),
        CsvColumn("Score", lambda r: r.score),
        CsvColumn("Estimated value", lambda r: r.estimated_value),
        CsvColumn("Owner", lambda r: r.owner.email if r.owner else None),
        CsvColumn("Created", lambda r: r.created_at),
        CsvColumn("Converted", lambda r: r.converted_at),
    ),
)

DEAL = Entity(
    name="deal",
    counted=True,
    label="Deal",
    plural="deals",
    model=Deal,
    filters={
        "name": F.text("Name", Deal.name),
        "value": F.money("Value", Deal.value),
        "currency": F.choice("Currency", Deal.currency, CURRENCIES),
        "probability": F.number("Probability (%)", Deal.probability),
        "status": F.choice("Status", Deal.status, DEAL_STATUSES),
        "pipeline": F.uuid("Pipeline", Deal.pipeline_id),
        "stage": F.uuid("Stage", Deal.stage_id),
        "stageName": F.text("Stage name", PipelineStage.name, via=Deal.stage),
        "company": F.text("Company", Company.name, via=Deal.company),
        "contact": F.text("Contact", Contact.first_name, Contact.last_name, via=Deal.contact),
        "source": F.choice("Source", Deal.source, LEAD_SOURCES),
        "lostReason": F.text("Lost reason", Deal.lost_reason),
        "owner": F.uuid("Owner", Deal.owner_id),
        "expectedClose": F.date("Expected close", Deal.expected_close_date),
        "closed": F.datetime("Closed", Deal.closed_at),
        "stageChanged": F.datetime("Stage changed", Deal.stage_changed_at),
        "daysInStage": F.computed_as("Days in stage", FieldType.NUMBER, days_in_stage_sql),
        # EXISTS on the deal's stage, so "is no" also matches deals without a stage.
        "rotting": F.computed_as("Rotting", FieldType.BOOLEAN, rotting_sql, via=Deal.stage),
        "created": F.datetime("Created", Deal.created_at),
        "updated": F.datetime("Updated", Deal.updated_at),
        "tags": F.tag("Tags", Deal.tags, Tag.id),
        "import": F.uuid("Import", Deal.import_id),  # the records a CSV import created
    },
    trash=TrashRule(label=Deal.name, rehome=rehome_deals),
    searched=(Deal.name,),
    global_search=GlobalSearch(
        title="Deals", label=Deal.name, detail=Deal.status, searched=(Deal.name,), detail_choices="deal_status"
    ),
    detail_endpoint="deals.detail",
    tag_table=deal_tags,
    activity_link="deal_id",
    # Rows are DealRow (services/deals.py): the deal with its pipeline and stage from the cache.
    csv=(
        CsvColumn("Name", lambda r: r.deal.name),
        CsvColumn("Value", lambda r: f"{r.deal.value:.2f}"),
        CsvColumn("Currency", lambda r: r.deal.currency),
        CsvColumn("Status", lambda r: r.deal.status, choices="deal_status"),
        CsvColumn("Pipeline", lambda r: _name(r.pipeline)),
        CsvColumn("Stage", lambda r: _name(r.stage)),
        CsvColumn("Probability", lambda r: "" if r.deal.probability is None else r.deal.probability),
        CsvColumn("Expected close", lambda r: _iso(r.deal.expected_close_date)),
        CsvColumn("Company", lambda r: _name(r.deal.company)),
        CsvColumn("Contact", lambda r: r.deal.contact.full_name if r.deal.contact else ""),
        CsvColumn("Owner", lambda r: _name(r.deal.owner)),
        CsvColumn("Tags", lambda r: _tags(r.deal)),
        CsvColumn("Created", lambda r: r.deal.created_at.date().isoformat()),
    ),
)

ACTIVITY = Entity(
    name="activity",
    counted=True,
    label="Activity",
    plural="activities",
    model=Activity,
    filters={
        "subject": F.text("Subject", Activity.subject),
        "description": F.text("Description", Activity.description),
        "type": F.choice("Type", Activity.type, ACTIVITY_TYPES),
        "status": F.choice("Status", Activity.status, ACTIVITY_STATUSES),
        "priority": F.choice("Priority", Activity.priority, ACTIVITY_PRIORITIES),
        "owner": F.uuid("Owner", Activity.owner_id),
        "due": F.datetime("Due", Activity.due_at),
        "completed": F.datetime("Completed", Activity.completed_at),
        "duration": F.number("Duration (minutes)", Activity.duration_minutes),
        "contact": F.text("Contact", Contact.first_name, Contact.last_name, via=Activity.contact),
        "company": F.text("Company", Company.name, via=Activity.company),
        "deal": F.text("Deal", Deal.name, via=Activity.deal),
        "lead": F.text("Lead", Lead.first_name, Lead.last_name, via=Activity.lead),
        "created": F.datetime("Created", Activity.created_at),
        "import": F.uuid("Import", Activity.import_id),
    },
    trash=TrashRule(label=Activity.subject, dependents=refresh_contacts_of_activities),
    searched=(Activity.subject,),
    # The headers are the import's (imports/fields.py), so an export imports back as it was.
    csv=(
        CsvColumn("Subject", lambda r: r.subject),
        CsvColumn("Type", lambda r: r.type, choices="activity_type"),
        CsvColumn("Status", lambda r: r.status, choices="activity_status"),
        CsvColumn("Priority", lambda r: r.priority, choices="activity_priority"),
        CsvColumn("Due date", lambda r: r.due_at.date().isoformat() if r.due_at else ""),
        CsvColumn("Due time", lambda r: r.due_at.strftime("%H:%M") if r.due_at else ""),
        CsvColumn("Duration (minutes)", lambda r: r.duration_minutes),
        CsvColumn("Notes", lambda r: r.description),
        CsvColumn("Contact", lambda r: r.contact.email or r.contact.full_name if r.contact else ""),
        CsvColumn("Company", lambda r: _name(r.company)),
        CsvColumn("Deal", lambda r: _name(r.deal)),
        CsvColumn("Owner", lambda r: r.owner.email if r.owner else None),
    ),
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (CONTACT, COMPANY, LEAD, DEAL, ACTIVITY)}


def entity(name: str) -> Entity:
    """The entity called `name` (KeyError for an unknown name: callers check against ENTITIES)."""
    return ENTITIES[name]


def taggable() -> Sequence[Entity]:
    return [e for e in ENTITIES.values() if e.taggable]


def searched_globally() -> Sequence[Entity]:
    return [e for e in ENTITIES.values() if e.global_search is not None]


def activity_links() -> Sequence[Entity]:
    """The entities an activity can be linked to, in the order forms and timelines list them."""
    return [e for e in ENTITIES.values() if e.activity_link is not None]

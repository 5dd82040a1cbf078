"""What an import can set on each entity, and the guess of a column's field from its header.

Each entity's importable fields are its form's fields (validated by that form, `Field.form`) plus
relations by name (`kind`): the company, owner, tags, pipeline and stage, contact, deal. The guess
knows our own export's headers (crm_web/entities.py `csv`), the fields' labels and the headers other
CRMs export ("First Name", "E-mail Address", "Organization", "Deal Value", ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_web.entities import ACTIVITY, COMPANY, CONTACT, DEAL, LEAD, Entity
from crm_web.forms.activities import ActivityForm
from crm_web.forms.companies import CompanyForm
from crm_web.forms.contacts import ContactForm
from crm_web.forms.deals import DealForm
from crm_web.forms.leads import LeadForm
from crm_web.models import (
    ACTIVITY_PRIORITIES,
    ACTIVITY_STATUSES,
    ACTIVITY_TYPES,
    COMPANY_SIZES,
    CONTACT_STATUSES,
    CURRENCIES,
    LEAD_SOURCES,
)

IGNORE = ""

# Relations by name: resolved per batch, never validated by a form field.
RELATIONS = ("company", "owner", "tags", "pipeline", "stage", "contact", "deal")


@dataclass(frozen=True)
class Field:
    """One importable field: the form field it fills (`name`) or a relation (`kind`)."""

    name: str
    label: str
    headers: tuple[str, ...] = ()  # other headers meaning this field
    kind: str = "value"  # value | choice | bool | company | owner | tags | pipeline | stage | contact | deal
    choices: Sequence[tuple[str, str]] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)
    required: bool = False

    def choice_value(self, cell: str) -> str:
        """A choice's value from its value, its label or a synonym, any case ("Customer" -> "customer");
        else the cell as it is, for the form to refuse."""
        key = _norm(cell)
        for value, label in self.choices:
            if key in (_norm(value), _norm(label)):
                return value
        return self.synonyms.get(key, cell)


@dataclass(frozen=True)
class ImportSpec:
    """How one entity is imported."""

    entity: Entity
    form: type
    fields: tuple[Field, ...]
    # Export headers that are computed (counts, dates the app sets): ignored by the guess.
    computed: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.entity.name

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def _norm(text: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def _choices(pairs: Sequence[tuple[Any, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(value), label) for value, label in pairs)


SOURCE_SYNONYMS = {"web": "website", "webform": "website", "coldcalling": "cold_call", "email": "email_campaign"}
OWNER = Field(
    "owner", "Owner", ("owneremail", "assignedto", "salesrep", "accountowner", "contactowner", "user"), "owner"
)
TAGS = Field("tags", "Tags", ("tag", "labels", "label", "categories"), "tags")
FIRST = Field("first_name", "First name", ("firstname", "givenname", "forename", "first"), required=True)
LAST = Field("last_name", "Last name", ("lastname", "surname", "familyname", "last"))
EMAIL = Field("email", "Email", ("emailaddress", "email1", "primaryemail", "workemail", "mail", "e-mail"))
PHONE = Field("phone", "Phone", ("phonenumber", "telephone", "tel", "workphone", "businessphone", "phone1"))
TITLE = Field("title", "Job title", ("jobtitle", "position", "role"))

SPECS: dict[str, ImportSpec] = {
    "contact": ImportSpec(
        CONTACT,
        ContactForm,
        (
            FIRST,
            LAST,
            EMAIL,
            PHONE,
            Field("mobile", "Mobile", ("mobilephone", "cellphone", "cell")),
            TITLE,
            Field("department", "Department"),
            Field(
                "status",
                "Status",
                ("contactstatus", "lifecyclestage"),
                "choice",
                _choices(CONTACT_STATUSES),
                {"client": "customer", "former": "churned", "lost": "churned"},
            ),
            Field(
                "lead_source", "Lead source", ("source", "origin"), "choice", _choices(LEAD_SOURCES), SOURCE_SYNONYMS
            ),
            Field("linkedin_url", "LinkedIn", ("linkedin", "linkedinprofile")),
            Field("birthday", "Birthday", ("dateofbirth", "birthdate", "dob")),
            Field("city", "City", ("town",)),
            Field("country", "Country"),
            Field("do_not_contact", "Do not contact", ("donotcall", "unsubscribed", "optout"), "bool"),
            Field("notes", "Notes", ("note", "description", "comments")),
            Field(
                "company", "Company", ("organization", "organisation", "companyname", "account", "employer"), "company"
            ),
            OWNER,
            TAGS,
        ),
        computed=("Deals", "Activities", "Last activity"),
    ),
    "company": ImportSpec(
        COMPANY,
        CompanyForm,
        (
            Field("name", "Name", ("companyname", "company", "organization", "organisation", "account"), required=True),
            Field("website", "Website", ("url", "web", "domain", "homepage")),
            EMAIL,
            PHONE,
            Field("industry", "Industry", ("sector",)),
            Field("size", "Size", ("companysize",), "choice", _choices([(s, s) for s in COMPANY_SIZES])),
            Field("employee_count", "Employees", ("numberofemployees", "employeecount", "headcount")),
            Field("annual_revenue", "Annual revenue", ("revenue",)),
            Field("street", "Street", ("address", "streetaddress")),
            Field("city", "City", ("town",)),
            Field("state", "State / region", ("state", "region", "province")),
            Field("postal_code", "Postal code", ("zip", "zipcode", "postcode")),
            Field("country", "Country"),
            Field("description", "Description", ("notes", "about")),
            OWNER,
            TAGS,
        ),
        computed=("Contacts", "Open deal value", "Created"),
    ),
    "lead": ImportSpec(
        LEAD,
        LeadForm,
        (
            FIRST,
            LAST,
            EMAIL,
            PHONE,
            TITLE,
            Field("company_name", "Company", ("organization", "organisation", "companyname", "account")),
            Field("website", "Website", ("url", "web")),
            Field("source", "Source", ("leadsource", "origin"), "choice", _choices(LEAD_SOURCES), SOURCE_SYNONYMS),
            Field("score", "Score", ("leadscore", "rating")),
            Field("estimated_value", "Estimated value", ("value", "dealvalue", "amount")),
            Field("notes", "Notes", ("note", "description", "comments")),
            OWNER,
            TAGS,
        ),
        computed=("Status", "Created", "Converted"),
    ),
    "deal": ImportSpec(
        DEAL,
        DealForm,
        (
            Field("name", "Name", ("dealname", "title", "opportunity", "opportunityname"), required=True),
            Field("value", "Value", ("dealvalue", "amount", "dealamount")),
            Field("currency", "Currency", ("dealcurrency",), "choice", _choices([(c, c) for c in CURRENCIES])),
            Field("pipeline", "Pipeline", ("pipelinename",), "pipeline"),
            Field("stage", "Stage", ("dealstage", "stagename"), "stage"),
            Field("probability", "Probability", ("probabilitypercent", "winprobability")),
            Field("expected_close_date", "Expected close", ("expectedclosedate", "closedate", "expectedclose")),
            Field("source", "Source", ("leadsource",), "choice", _choices(LEAD_SOURCES), SOURCE_SYNONYMS),
            Field("lost_reason", "Lost reason", ("lostreason",)),
            Field("description", "Description", ("notes",)),
            Field("company", "Company", ("organization", "organisation", "companyname", "account"), "company"),
            Field("contact", "Contact", ("contactname", "person", "contactemail"), "contact"),
            OWNER,
            TAGS,
        ),
        computed=("Status", "Created"),
    ),
    "activity": ImportSpec(
        ACTIVITY,
        ActivityForm,
        (
            Field("subject", "Subject", ("title", "activity", "activityname"), required=True),
            Field("type", "Type", ("activitytype",), "choice", _choices(ACTIVITY_TYPES), {"phonecall": "call"}),
            Field("status", "Status", (), "choice", _choices(ACTIVITY_STATUSES), {"done": "completed"}),
            Field("priority", "Priority", (), "choice", _choices(ACTIVITY_PRIORITIES)),
            Field("due_date", "Due date", ("due", "duedate", "date")),
            Field("due_time", "Due time", ("time",)),
            Field("duration_minutes", "Duration (minutes)", ("duration",)),
            Field("description", "Notes", ("description", "note")),
            Field("contact", "Contact", ("contactname", "contactemail", "person"), "contact"),
            Field("company", "Company", ("organization", "organisation", "companyname"), "company"),
            Field("deal", "Deal", ("dealname",), "deal"),
            OWNER,
        ),
    ),
}

# The command line and the upload form name entities in the plural.
BY_PLURAL = {spec.entity.plural: spec for spec in SPECS.values()}


def spec_for(name: str) -> ImportSpec:
    """The spec of "contact" or "contacts" (KeyError otherwise)."""
    return SPECS.get(name) or BY_PLURAL[name]


def with_custom_fields(spec: ImportSpec, schema: Mapping[str, Any] | None) -> ImportSpec:
    """The spec plus the organisation's live custom fields of the entity (`cf_<key>`, kind "custom"):
    a column whose header is a field's label or key maps to it."""
    from dataclasses import replace

    from crm_web.custom_fields import live_fields

    custom = tuple(
        Field(cf.name, cf.label, headers=(cf.key,), kind="custom", required=cf.required)
        for cf in live_fields(schema, spec.name)
    )
    return replace(spec, fields=spec.fields + custom) if custom else spec


def _header_index(spec: ImportSpec) -> dict[str, str]:
    index: dict[str, str] = {}
    for f in spec.fields:
        for text in (*f.headers, f.name, f.label):
            index.setdefault(_norm(text), f.name)
    # Our own export's headers are the fields' labels, except the computed ones (counts, dates).
    for header in spec.computed:
        index[_norm(header)] = IGNORE
    return index


def guess_mapping(spec: ImportSpec, header: Sequence[str]) -> list[str]:
    """The field of each column ("" = ignore), guessed from its header; a field goes to its first column."""
    index = _header_index(spec)
    taken: set[str] = set()
    mapping: list[str] = []
    for text in header:
        name = index.get(_norm(text), IGNORE)
        if name and name in taken:
            name = IGNORE
        taken.add(name)
        mapping.append(name)
    return mapping


def check_mapping(spec: ImportSpec, mapping: Sequence[str], width: int) -> list[str]:
    """A mapping as given (a file, a form), cut or padded to the file's width; unknown fields and a
    field mapped twice raise ValueError."""
    names = {f.name for f in spec.fields}
    cleaned = [(m or IGNORE).strip() for m in list(mapping)[:width]] + [IGNORE] * max(0, width - len(mapping))
    seen: set[str] = set()
    for name in cleaned:
        if not name:
            continue
        if name not in names:
            raise ValueError(f"Unknown field {name!r} for {spec.entity.plural}.")
        if name in seen:
            raise ValueError(f"The field {name!r} is mapped to two columns.")
        seen.add(name)
    return cleaned

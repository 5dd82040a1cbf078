"""Leads: the list, the detail page, writes, the one-click status flow and conversion.

Conversion turns a lead into a contact, a company (an existing live company of the same
name, compared case-insensitively, else a new one) and optionally a deal in the default
pipeline's first stage, all in one transaction. "converted" is reachable only that way, and
only once: the lead row is locked (FOR UPDATE on PostgreSQL) and versioned, so two
simultaneous conversions cannot both succeed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from crm_web.column_limits import column_problems
from crm_web.entities import LEAD
from crm_web.errors import Conflict, ValidationError
from crm_web.models import (
    LEAD_SOURCES,
    LEAD_STATUSES,
    Activity,
    Company,
    Contact,
    Deal,
    Lead,
    Pipeline,
    PipelineStage,
    utcnow,
)
from crm_web.services.base import BaseService
from crm_web.services.history import HistoryItem, record_change
from crm_web.services.sql import AnySelect

CONVERTED = "converted"
# Statuses a click can set; "converted" is only reached by converting.
MANUAL_STATUSES = tuple(value for value, _ in LEAD_STATUSES if value != CONVERTED)
SOURCE_VALUES = frozenset(value for value, _ in LEAD_SOURCES)


@dataclass
class LeadDetail:
    lead: Lead
    timeline: list[Activity]
    history: list[HistoryItem]


@dataclass
class Conversion:
    """What a lead became."""

    lead: Lead
    contact: Contact
    company: Company | None
    company_created: bool
    deal: Deal | None


class LeadService(BaseService[Lead]):
    """Org-scoped leads; sales staff change only their own (or unowned) leads."""

    entity = LEAD
    EMPTY_OWNER_IS_ME = True
    SORT_FIELDS: ClassVar[dict[str, Any]] = {
        "name": (func.lower(Lead.last_name), func.lower(Lead.first_name)),
        "company": func.lower(Lead.company_name),
        "status": Lead.status,
        "score": Lead.score,
        "value": Lead.estimated_value,
        "source": Lead.source,
    }
    WRITABLE_FIELDS = frozenset(
        {
            "first_name",
            "last_name",
            "email",
            "phone",
            "title",
            "company_name",
            "website",
            "source",
            "score",
            "estimated_value",
            "notes",
            "owner_id",
        }
    )

    def optimized_query(self) -> AnySelect:
        return self.scoped().options(joinedload(Lead.owner), selectinload(Lead.tags))

    # --- reading -----------------------------------------------------------------------

    def export_query(self) -> AnySelect:
        return self.scoped().options(joinedload(Lead.owner))

    def detail(self, lead_id: uuid.UUID) -> LeadDetail:
        """The lead with owner, tags and what it became, its activity timeline and its history."""
        lead = self.get(
            lead_id,
            query=self.scoped().options(
                joinedload(Lead.owner),
                selectinload(Lead.tags),
                joinedload(Lead.converted_contact),
                joinedload(Lead.converted_company),
                joinedload(Lead.converted_deal),
            ),
        )
        return LeadDetail(lead=lead, timeline=self.activity_timeline(lead_id), history=self.readable_history(lead_id))

    def default_pipeline(self) -> tuple[Pipeline, PipelineStage] | None:
        """The organisation's default pipeline and its first stage, if both exist (one statement)."""
        row = self.session.execute(
            select(Pipeline, PipelineStage)
            .join(PipelineStage, PipelineStage.pipeline_id == Pipeline.id)
            .where(Pipeline.org_id == self.org_id, Pipeline.is_default.is_(True))
            .order_by(PipelineStage.position, PipelineStage.id)
            .limit(1)
        ).first()
        return (row[0], row[1]) if row else None

    # --- writing -----------------------------------------------------------------------

    def clean(self, values: dict[str, Any], obj: Lead | None = None) -> dict[str, Any]:
        """A lead needs a first name; score is 0-100; value is not negative; the owner is in the org."""
        errors: dict[str, str] = {}
        for key, value in list(values.items()):
            if isinstance(value, str):
                values[key] = value.strip() or (None if key != "last_name" else "")
        if ("first_name" in values or obj is None) and not values.get("first_name"):
            errors["first_name"] = "A lead needs a first name."
        if values.get("score") is None and "score" in values:
            values["score"] = 0
        if values.get("score") is not None and not 0 <= values["score"] <= 100:
            errors["score"] = "Score must be between 0 and 100."
        if values.get("estimated_value") is not None and values["estimated_value"] < 0:
            errors["estimated_value"] = "Cannot be negative."
        if values.get("source") and values["source"] not in SOURCE_VALUES:
            errors["source"] = "Choose one of the listed sources."
        self.refuse_errors(values, errors)
        return values

    def set_status(self, lead_id: uuid.UUID, *, status: str) -> Lead:
        """One click moves a lead between new/contacted/qualified/unqualified; a converted lead stays converted."""
        if status not in MANUAL_STATUSES:
            if status == CONVERTED:
                raise ValidationError("A lead becomes converted only by converting it.", {"status": "Use Convert."})
            raise ValidationError(f"Unknown status {status[:40]!r}.", {"status": "Unknown status."})
        lead = self.get_for_edit(lead_id, query=self.scoped())
        if lead.status == CONVERTED:
            raise Conflict("This lead is already converted; its status cannot change.")
        if lead.status != status:
            self.history(lead, "updated", {"status": [lead.status, status]})
            lead.status = status
            self.commit()
        return lead

    def convert(
        self,
        lead_id: uuid.UUID,
        *,
        create_deal: bool = True,
        deal_name: str | None = None,
        deal_value: Decimal | None = None,
        contact_id: uuid.UUID | None = None,
        company_id: uuid.UUID | None = None,
    ) -> Conversion:
        """Lead -> contact (+ company found by name or created, + optional deal), in one transaction.
        `contact_id` / `company_id`: link to that existing contact / company instead of creating one
        (the conversion page offers the likely duplicates, services/duplicates)."""
        lead = self.get_for_edit(lead_id, query=self.scoped().options(selectinload(Lead.tags)).with_for_update(of=Lead))
        if lead.status == CONVERTED or lead.converted_at is not None:
            raise Conflict(f"{lead.full_name or 'This lead'} was already converted; a lead converts only once.")
        too_big = column_problems(Deal, {"value": deal_value})
        if too_big:
            raise ValidationError("Please correct the highlighted fields", {"deal_value": too_big["value"]})
        if deal_value is not None and deal_value < 0:
            raise ValidationError("Please correct the highlighted fields", {"deal_value": "Cannot be negative."})
        target = self.default_pipeline() if create_deal else None
        if create_deal and target is None:
            raise ValidationError(
                "There is no default pipeline with a stage to put the deal in.",
                {"create_deal": "There is no default pipeline: set one in Settings, or convert without a deal."},
            )
        owner_id = lead.owner_id or self.actor.user_id
        existing_contact = self._existing(Contact, contact_id, "contact_id", "That contact does not exist.")
        existing_company = self._existing(Company, company_id, "company_id", "That company does not exist.")
        if existing_company is not None:
            company, company_created = existing_company, False
        else:
            company, company_created = self._company_for(lead, owner_id)
        contact_created = existing_contact is None
        # Ids chosen here so the rows can point at each other before the single flush.
        contact = existing_contact or Contact(
            id=uuid.uuid4(),
            org_id=self.org_id,
            first_name=lead.first_name,
            last_name=lead.last_name or "",
            email=lead.email,
            phone=lead.phone,
            title=lead.title,
            lead_source=lead.source,
            notes=lead.notes,
            status="prospect",
            owner_id=owner_id,
            primary_company_id=company.id if company else None,
            tags=list(lead.tags),
        )
        if contact_created:
            self.session.add(contact)
        deal = None
        if target is not None:
            pipeline, stage = target
            deal = Deal(
                id=uuid.uuid4(),
                org_id=self.org_id,
                contact_id=contact.id,
                name=(deal_name or "").strip() or self._deal_name(lead, company),
                value=deal_value if deal_value is not None else (lead.estimated_value or Decimal("0")),
                currency=pipeline.currency,
                pipeline_id=pipeline.id,
                stage_id=stage.id,
                status="open",
                source=lead.source,
                owner_id=owner_id,
                company_id=company.id if company else None,
                stage_changed_at=utcnow(),
            )
            self.session.add(deal)
        lead.status = CONVERTED
        lead.converted_at = utcnow()
        lead.converted_contact_id = contact.id
        lead.converted_company_id = company.id if company else None
        lead.converted_deal_id = deal.id if deal else None
        self.history(
            lead,
            "converted",
            {
                "contact_id": str(contact.id),
                "company_id": str(company.id) if company else None,
                "deal_id": str(deal.id) if deal else None,
            },
        )
        for entity_type, created in (
            ("contact", contact if contact_created else None),
            ("company", company if company_created else None),
            ("deal", deal),
        ):
            if created is not None:
                record_change(self.session, self.actor, entity_type, created, "created", {"from_lead": str(lead.id)})
        self.commit()
        return Conversion(lead=lead, contact=contact, company=company, company_created=company_created, deal=deal)

    def _existing(self, model: Any, record_id: uuid.UUID | None, field: str, missing: str) -> Any:
        """A live record of the organisation chosen to link to (None: none chosen)."""
        if record_id is None:
            return None
        found = self.session.scalar(select(model).where(model.org_id == self.org_id, model.id == record_id))
        if found is None:
            raise ValidationError("Please correct the highlighted fields", {field: missing})
        return found

    def _company_for(self, lead: Lead, owner_id: uuid.UUID | None) -> tuple[Company | None, bool]:
        """The live company named like the lead's company (case-insensitive), else a new one."""
        name = (lead.company_name or "").strip()
        if not name:
            return None, False
        existing = self.session.scalars(
            select(Company)
            .where(Company.org_id == self.org_id, func.lower(Company.name) == name.lower())
            .order_by(Company.created_at, Company.id)
            .limit(1)
        ).first()
        if existing is not None:
            return existing, False
        company = Company(id=uuid.uuid4(), org_id=self.org_id, name=name, website=lead.website, owner_id=owner_id)
        self.session.add(company)
        return company, True

    @staticmethod
    def _deal_name(lead: Lead, company: Company | None) -> str:
        return f"{company.name if company else lead.full_name} deal"[:200]

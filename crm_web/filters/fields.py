"""Each entity's filter whitelist: the only fields a URL can filter on, and how.

The entity registry (crm_web/entities.py) names each entity's whitelist. Public names are short and stable
because they appear in shared links; renaming one breaks bookmarks.
"""

from __future__ import annotations

from crm_web.filters.types import FilterField
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
)

F = FilterField

CONTACT_FILTERS: dict[str, FilterField] = {
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
}

COMPANY_FILTERS: dict[str, FilterField] = {
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
}

LEAD_FILTERS: dict[str, FilterField] = {
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
}

DEAL_FILTERS: dict[str, FilterField] = {
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
    "created": F.datetime("Created", Deal.created_at),
    "updated": F.datetime("Updated", Deal.updated_at),
    "tags": F.tag("Tags", Deal.tags, Tag.id),
}

ACTIVITY_FILTERS: dict[str, FilterField] = {
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
}

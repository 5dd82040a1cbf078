"""Leads: the shared list, forms and delete/Undo (views/generic.py), the detail page with the
one-click status flow, and conversion."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from crm_web.entities import LEAD
from crm_web.errors import BadRequest, ValidationError
from crm_web.forms import apply_errors
from crm_web.forms.leads import MANUAL_STATUS_CHOICES, ConvertLeadForm, LeadForm, LeadStatusForm
from crm_web.htmx import hx_location, wants_fragment
from crm_web.params import parse_uuid
from crm_web.rendering import render_page, with_toast
from crm_web.services.duplicates.service import DuplicateService
from crm_web.services.leads import LeadService
from crm_web.views.custom import CustomValueViews
from crm_web.views.generic import FormViews, ListViews, RecordViews, acting
from crm_web.views.pickers import fit_owner_field, owner_options

bp = Blueprint("leads", __name__)


ListViews(bp, LEAD, LeadService)


# --- detail, status, delete / restore ---------------------------------------------------------------


@bp.get("/leads/<uuid:lead_id>")
def detail(lead_id: uuid.UUID):
    detail = acting(LeadService).detail(lead_id)
    return render_page("leads/detail.html", detail=detail, lead=detail.lead, status_choices=MANUAL_STATUS_CHOICES)


@bp.post("/leads/<uuid:lead_id>/status")
def set_status(lead_id: uuid.UUID):
    form = LeadStatusForm()
    if not form.validate_on_submit():
        raise BadRequest("Choose one of the statuses new, contacted, qualified or unqualified.")
    lead = acting(LeadService).set_status(lead_id, status=form.status.data)
    if not wants_fragment():
        return redirect(url_for("leads.detail", lead_id=lead.id), 303)
    response = render_page("leads/detail.html", block="lead_status", lead=lead, status_choices=MANUAL_STATUS_CHOICES)
    return with_toast(response, f"{lead.full_name} is now {form.status.data}.")


# --- conversion -----------------------------------------------------------------------------------------


def convert_context(service: LeadService, form: ConvertLeadForm, lead_id: uuid.UUID) -> dict[str, Any]:
    lead = service.get_for_edit(lead_id)
    if form.deal_value.data is None and not form.is_submitted():
        form.deal_value.data = lead.estimated_value
    target = service.default_pipeline()
    if target is None:
        form.create_deal.data = False  # nowhere to put a deal: the option is unticked and disabled
    matches = DuplicateService(service.actor, service.session)
    return {
        "form": form,
        "lead": lead,
        "target": target,
        # Likely existing records the conversion may link to instead of creating new ones.
        "contact_matches": matches.candidates("contact", {"email": lead.email, "phone": lead.phone}),
        "company_matches": matches.candidates("company", {"name": lead.company_name, "website": lead.website}),
        "linked": {name: request.form.get(name, "") for name in ("link_contact", "link_company")},
    }


@bp.get("/leads/<uuid:lead_id>/convert")
def convert_form(lead_id: uuid.UUID):
    return render_page("leads/convert.html", **convert_context(acting(LeadService), ConvertLeadForm(), lead_id))


@bp.post("/leads/<uuid:lead_id>/convert")
def convert(lead_id: uuid.UUID):
    service, form = acting(LeadService), ConvertLeadForm()
    if form.validate_on_submit():
        try:
            result = service.convert(
                lead_id,
                **form.values(),
                contact_id=parse_uuid(request.form.get("link_contact"), "link_contact"),
                company_id=parse_uuid(request.form.get("link_company"), "link_company"),
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            flash(f"{result.lead.full_name} was converted.", "info")
            url = url_for("leads.detail", lead_id=lead_id)
            return hx_location(url) if wants_fragment() else redirect(url, 303)
    return render_page(
        "leads/convert.html", block="convert_form", status=422, **convert_context(service, form, lead_id)
    )


# --- create / edit ----------------------------------------------------------------------------------------


def form_context(service: LeadService, form: LeadForm, lead: Any = None) -> dict[str, Any]:
    form.set_choices(owners=fit_owner_field(service.actor, form.owner_id, owner_options(service)))
    return {}


CustomValueViews(bp, LEAD, LeadService)
FormViews(bp, LEAD, LeadService, LeadForm, form_context=form_context)
RecordViews(bp, LEAD, LeadService, deleted_message=lambda lead: f"Deleted {lead.full_name}.")

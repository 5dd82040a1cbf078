"""Leads: list (search, filter builder, sort, pages, bulk delete, CSV), detail with the one-click
status flow, forms, conversion, delete and undo."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user

from crm_web.csv_export import entity_csv_response
from crm_web.entities import LEAD
from crm_web.errors import BadRequest, Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors
from crm_web.forms.leads import MANUAL_STATUS_CHOICES, ConvertLeadForm, LeadForm, LeadStatusForm
from crm_web.htmx import hx_location, wants_fragment
from crm_web.params import get_uuid_list
from crm_web.rendering import plural, render_page, with_toast, with_undo
from crm_web.services.base import Actor
from crm_web.services.leads import LeadService
from crm_web.views.filtering import (
    FilterBuilder,
    builder_fields,
    parse_export_query,
    parse_filtered_list_query,
    render_list_page,
)
from crm_web.views.listing import ListQuery

bp = Blueprint("leads", __name__)

TABLE = "#lead-table"


def _service() -> LeadService:
    return LeadService(Actor.of(current_user))


# --- list -----------------------------------------------------------------------------------------


def list_context(service: LeadService, query: ListQuery, builder: FilterBuilder) -> dict[str, Any]:
    """Everything the list page and its blocks show (4 statements whatever the page size)."""
    page = service.list_page(
        filter_spec=query.filter_spec,
        q=query.q,
        scope=query.scope,
        sort=query.sort,
        page=query.page,
        per_page=query.per_page,
    )
    choices = service.choices()
    fields_meta = builder_fields(LEAD.filter_fields(), tags=choices.tags, choices={"owner": choices.owners})
    return {
        "page": page,
        "choices": choices,
        "fields_meta": fields_meta,
        "query": query,
        "builder": builder,
        "list_url": url_for("leads.index"),
    }


def _table(service: LeadService, query: ListQuery, builder: FilterBuilder) -> Any:
    """After a POST from the list: the table block with the list state of the query string."""
    if not wants_fragment():
        return redirect(query.url(url_for("leads.index")), 303)
    return render_page("leads/index.html", block="lead_table", **list_context(service, query, builder))


@bp.get("/leads")
def index():
    query, builder = parse_filtered_list_query(LEAD.filter_fields())
    return render_list_page("leads/index.html", table_block="lead_table", **list_context(_service(), query, builder))


@bp.get("/leads/export.csv")
def export():
    query = parse_export_query(LEAD.filter_fields())
    rows = _service().export_rows(filter_spec=query.filter_spec, q=query.q, scope=query.scope, sort=query.sort)
    return entity_csv_response(LEAD, rows)


@bp.post("/leads/bulk/delete")
def bulk_delete():
    query, builder = parse_filtered_list_query(LEAD.filter_fields())
    service = _service()
    deleted = service.delete_many(get_uuid_list("ids"))
    return with_undo(
        _table(service, query, builder),
        f"Deleted {plural(len(deleted), 'lead')}.",
        undo_url=query.url(url_for("leads.restore_many")),
        ids=deleted,
        target=TABLE,
    )


@bp.post("/leads/bulk/restore")
def restore_many():
    query, builder = parse_filtered_list_query(LEAD.filter_fields())
    service = _service()
    restored = service.restore_many(get_uuid_list("ids"))
    return with_toast(_table(service, query, builder), f"Restored {plural(len(restored), 'lead')}.")


# --- detail, status, delete / restore ---------------------------------------------------------------


@bp.get("/leads/<uuid:lead_id>")
def detail(lead_id: uuid.UUID):
    detail = _service().detail(lead_id)
    return render_page("leads/detail.html", detail=detail, lead=detail.lead, status_choices=MANUAL_STATUS_CHOICES)


@bp.post("/leads/<uuid:lead_id>/status")
def set_status(lead_id: uuid.UUID):
    form = LeadStatusForm()
    if not form.validate_on_submit():
        raise BadRequest("Choose one of the statuses new, contacted, qualified or unqualified.")
    lead = _service().set_status(lead_id, status=form.status.data)
    if not wants_fragment():
        return redirect(url_for("leads.detail", lead_id=lead.id), 303)
    response = render_page("leads/detail.html", block="lead_status", lead=lead, status_choices=MANUAL_STATUS_CHOICES)
    return with_toast(response, f"{lead.full_name} is now {form.status.data}.")


@bp.post("/leads/<uuid:lead_id>/delete")
def delete(lead_id: uuid.UUID):
    lead = _service().delete(lead_id)
    if not wants_fragment():
        return redirect(url_for("leads.index"), 303)
    response = render_page("leads/detail.html", block="lead_main", lead=lead, deleted=True)
    return with_undo(response, f"Deleted {lead.full_name}.", undo_url=url_for("leads.restore", lead_id=lead.id))


@bp.post("/leads/<uuid:lead_id>/restore")
def restore(lead_id: uuid.UUID):
    lead = _service().restore(lead_id)
    url = url_for("leads.detail", lead_id=lead.id)
    return hx_location(url) if wants_fragment() else redirect(url, 303)


# --- conversion -----------------------------------------------------------------------------------------


def convert_context(service: LeadService, form: ConvertLeadForm, lead_id: uuid.UUID) -> dict[str, Any]:
    lead = service.get_for_edit(lead_id)
    if form.deal_value.data is None and not form.is_submitted():
        form.deal_value.data = lead.estimated_value
    return {"form": form, "lead": lead, "target": service.default_pipeline()}


@bp.get("/leads/<uuid:lead_id>/convert")
def convert_form(lead_id: uuid.UUID):
    return render_page("leads/convert.html", **convert_context(_service(), ConvertLeadForm(), lead_id))


@bp.post("/leads/<uuid:lead_id>/convert")
def convert(lead_id: uuid.UUID):
    service, form = _service(), ConvertLeadForm()
    if form.validate_on_submit():
        try:
            result = service.convert(lead_id, **form.values())
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
    form.set_choices(owners=service.owner_choices())
    return {"form": form, "lead": lead}


def _save(service: LeadService, form: LeadForm, lead: Any = None):
    context = form_context(service, form, lead)
    status = 422
    if form.validate_on_submit():
        try:
            saved = (
                service.update(lead.id, expected_version=form.expected_version, **form.values())
                if lead
                else service.create(**form.values())
            )
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as error:  # a stale form: shown again with the typed values and who changed it
            apply_conflict(form, error)
            status = 409
        else:
            url = url_for("leads.detail", lead_id=saved.id)
            return hx_location(url) if wants_fragment() else redirect(url, 303)
    return render_page("leads/form.html", block="lead_form", status=status, **context)


@bp.get("/leads/new")
def new():
    return render_page("leads/form.html", **form_context(_service(), LeadForm(owner_id=current_user.id)))


@bp.post("/leads")
def create():
    return _save(_service(), LeadForm())


@bp.get("/leads/<uuid:lead_id>/edit")
def edit(lead_id: uuid.UUID):
    service = _service()
    lead = service.get_for_edit(lead_id)
    return render_page("leads/form.html", **form_context(service, LeadForm(obj=lead), lead))


@bp.post("/leads/<uuid:lead_id>")
def update(lead_id: uuid.UUID):
    service = _service()
    return _save(service, LeadForm(), service.get_for_edit(lead_id))

"""Companies: the shared list, forms and delete/Undo (views/generic.py), the detail page and its
contacts panel."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, jsonify, request

from crm_web.entities import COMPANY
from crm_web.errors import ValidationError
from crm_web.forms.companies import CompanyForm
from crm_web.rendering import render_page
from crm_web.services.companies import CompanyService
from crm_web.views.custom import CustomValueViews
from crm_web.views.generic import FormViews, ListViews, RecordViews, acting
from crm_web.views.pickers import fit_owner_field, owner_options

bp = Blueprint("companies", __name__)


ListViews(bp, COMPANY, CompanyService)


# --- detail, contacts panel, delete / restore ------------------------------------------------------


@bp.get("/companies/<uuid:company_id>")
def detail(company_id: uuid.UUID):
    detail = acting(CompanyService).detail(company_id)
    return render_page("companies/detail.html", detail=detail, company=detail.company)


@bp.get("/companies/<uuid:company_id>/contacts")
def contacts(company_id: uuid.UUID):
    company, members = acting(CompanyService).contacts(company_id)
    return render_page("companies/contacts.html", block="company_contacts", company=company, members=members)


# --- create / edit ----------------------------------------------------------------------------------


def form_context(service: CompanyService, form: CompanyForm, company: Any = None) -> dict[str, Any]:
    form.set_choices(owners=fit_owner_field(service.actor, form.owner_id, owner_options(service)))
    return {}


CustomValueViews(bp, COMPANY, CompanyService)
FormViews(bp, COMPANY, CompanyService, CompanyForm, form_context=form_context)


@bp.post("/companies/quick")
def quick_create():
    """A picker's "Create company '<typed>'": the new company (owned by the actor) as JSON for the
    picker to select; a refused name is a 422 with the reason."""
    name = (request.form.get("name") or "").strip()[:200]
    try:
        company = acting(CompanyService).create(name=name)
    except ValidationError as error:
        message = error.field_errors.get("name") or error.message
        return jsonify({"error": message}), 422
    return jsonify({"id": str(company.id), "label": company.name}), 201


RecordViews(
    bp,
    COMPANY,
    CompanyService,
    deleted_message=lambda company: f"Deleted {company.name}. Its contacts and deals are kept.",
)

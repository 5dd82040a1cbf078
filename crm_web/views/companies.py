"""Companies: list (search, filter builder, sort, pages, bulk delete, CSV), detail, contacts panel,
forms, delete and undo."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from crm_web.entities import COMPANY
from crm_web.forms.companies import CompanyForm
from crm_web.htmx import hx_location, wants_fragment
from crm_web.rendering import render_page, with_undo
from crm_web.services.base import Actor
from crm_web.services.companies import CompanyService
from crm_web.views.generic import FormViews, ListViews

bp = Blueprint("companies", __name__)


def _service() -> CompanyService:
    return CompanyService(Actor.of(current_user))


ListViews(bp, COMPANY, CompanyService)


# --- detail, contacts panel, delete / restore ------------------------------------------------------


@bp.get("/companies/<uuid:company_id>")
def detail(company_id: uuid.UUID):
    detail = _service().detail(company_id)
    return render_page("companies/detail.html", detail=detail, company=detail.company)


@bp.get("/companies/<uuid:company_id>/contacts")
def contacts(company_id: uuid.UUID):
    company, members = _service().contacts(company_id)
    return render_page("companies/contacts.html", block="company_contacts", company=company, members=members)


@bp.post("/companies/<uuid:company_id>/delete")
def delete(company_id: uuid.UUID):
    company = _service().delete(company_id)
    if not wants_fragment():
        return redirect(url_for("companies.index"), 303)
    response = render_page("companies/detail.html", block="company_main", company=company, deleted=True)
    return with_undo(
        response,
        f"Deleted {company.name}. Its contacts and deals are kept.",
        undo_url=url_for("companies.restore", company_id=company.id),
    )


@bp.post("/companies/<uuid:company_id>/restore")
def restore(company_id: uuid.UUID):
    company = _service().restore(company_id)
    url = url_for("companies.detail", company_id=company.id)
    return hx_location(url) if wants_fragment() else redirect(url, 303)


# --- create / edit ----------------------------------------------------------------------------------


def form_context(service: CompanyService, form: CompanyForm, company: Any = None) -> dict[str, Any]:
    form.set_choices(owners=service.owner_choices())
    return {}


FormViews(bp, COMPANY, CompanyService, CompanyForm, form_context=form_context)

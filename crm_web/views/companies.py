"""Companies: list (search, filter builder, sort, pages, bulk delete, CSV), detail, contacts panel,
forms, delete and undo."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from crm_web.csv_export import entity_csv_response
from crm_web.entities import COMPANY
from crm_web.errors import Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors
from crm_web.forms.companies import CompanyForm
from crm_web.htmx import hx_location, wants_fragment
from crm_web.params import get_uuid_list
from crm_web.rendering import plural, render_page, with_toast, with_undo
from crm_web.services.base import Actor
from crm_web.services.companies import CompanyService
from crm_web.views.filtering import (
    FilterBuilder,
    builder_fields,
    parse_export_query,
    parse_filtered_list_query,
    render_list_page,
)
from crm_web.views.listing import ListQuery

bp = Blueprint("companies", __name__)

TABLE = "#company-table"


def _service() -> CompanyService:
    return CompanyService(Actor.of(current_user))


def list_context(service: CompanyService, query: ListQuery, builder: FilterBuilder) -> dict[str, Any]:
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
    fields_meta = builder_fields(COMPANY.filter_fields(), tags=choices.tags, choices={"owner": choices.owners})
    return {
        "page": page,
        "choices": choices,
        "fields_meta": fields_meta,
        "query": query,
        "builder": builder,
        "list_url": url_for("companies.index"),
    }


def _table(service: CompanyService, query: ListQuery, builder: FilterBuilder) -> Any:
    """After a POST from the list: the table block with the list state of the query string."""
    if not wants_fragment():
        return redirect(query.url(url_for("companies.index")), 303)
    return render_page("companies/index.html", block="company_table", **list_context(service, query, builder))


@bp.get("/companies")
def index():
    query, builder = parse_filtered_list_query(COMPANY.filter_fields())
    return render_list_page(
        "companies/index.html", table_block="company_table", **list_context(_service(), query, builder)
    )


@bp.get("/companies/export.csv")
def export():
    query = parse_export_query(COMPANY.filter_fields())
    rows = _service().export_rows(filter_spec=query.filter_spec, q=query.q, scope=query.scope, sort=query.sort)
    return entity_csv_response(COMPANY, rows)


# --- bulk delete (the list's per-row delete is a bulk delete of one) -----------------------------


@bp.post("/companies/bulk/delete")
def bulk_delete():
    query, builder = parse_filtered_list_query(COMPANY.filter_fields())
    service = _service()
    deleted = service.delete_many(get_uuid_list("ids"))
    return with_undo(
        _table(service, query, builder),
        f"Deleted {plural(len(deleted), 'company', 'companies')}.",
        undo_url=query.url(url_for("companies.restore_many")),
        ids=deleted,
        target=TABLE,
    )


@bp.post("/companies/bulk/restore")
def restore_many():
    query, builder = parse_filtered_list_query(COMPANY.filter_fields())
    service = _service()
    restored = service.restore_many(get_uuid_list("ids"))
    return with_toast(_table(service, query, builder), f"Restored {plural(len(restored), 'company', 'companies')}.")


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
    return {"form": form, "company": company}


def _save(service: CompanyService, form: CompanyForm, company: Any = None):
    context = form_context(service, form, company)
    status = 422
    if form.validate_on_submit():
        try:
            saved = (
                service.update(company.id, expected_version=form.expected_version, **form.values())
                if company
                else service.create(**form.values())
            )
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as error:  # a stale form: shown again with the typed values and who changed it
            apply_conflict(form, error)
            status = 409
        else:
            url = url_for("companies.detail", company_id=saved.id)
            return hx_location(url) if wants_fragment() else redirect(url, 303)
    return render_page("companies/form.html", block="company_form", status=status, **context)


@bp.get("/companies/new")
def new():
    service = _service()
    return render_page("companies/form.html", **form_context(service, CompanyForm(owner_id=current_user.id)))


@bp.post("/companies")
def create():
    return _save(_service(), CompanyForm())


@bp.get("/companies/<uuid:company_id>/edit")
def edit(company_id: uuid.UUID):
    service = _service()
    company = service.get_for_edit(company_id)
    return render_page("companies/form.html", **form_context(service, CompanyForm(obj=company), company))


@bp.post("/companies/<uuid:company_id>")
def update(company_id: uuid.UUID):
    service = _service()
    return _save(service, CompanyForm(), service.get_for_edit(company_id))

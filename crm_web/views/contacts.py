"""Contacts: list (search, filter builder, sort, pages, bulk actions, CSV), detail, forms, undo."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, get_template_attribute, redirect, request, url_for
from flask_login import current_user

from crm_web.csv_export import entity_csv_response
from crm_web.entities import CONTACT
from crm_web.errors import Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors, conflict_message
from crm_web.forms.contacts import ContactForm
from crm_web.htmx import hx_location, wants_fragment
from crm_web.params import get_text_param, get_uuid_list, get_uuid_param, parse_uuid
from crm_web.rendering import plural, render_fragments, render_page, with_toast, with_undo
from crm_web.services.base import Actor
from crm_web.services.contacts import ContactService
from crm_web.views.filtering import (
    FilterBuilder,
    builder_fields,
    parse_export_query,
    parse_filtered_list_query,
    render_list_page,
)
from crm_web.views.listing import ListQuery

bp = Blueprint("contacts", __name__)

TABLE = "#contact-table"


def _service() -> ContactService:
    return ContactService(Actor.of(current_user))


def list_context(service: ContactService, query: ListQuery, builder: FilterBuilder) -> dict[str, Any]:
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
    fields_meta = builder_fields(CONTACT.filter_fields(), tags=choices.tags, choices={"owner": choices.owners})
    return {
        "page": page,
        "choices": choices,
        "fields_meta": fields_meta,
        "query": query,
        "builder": builder,
        "list_url": url_for("contacts.index"),
    }


def _table(service: ContactService, query: ListQuery, builder: FilterBuilder) -> Any:
    """After a POST from the list: the table block with the list state of the query string."""
    if not wants_fragment():
        return redirect(query.url(url_for("contacts.index")), 303)
    return render_page("contacts/index.html", block="contact_table", **list_context(service, query, builder))


@bp.get("/contacts")
def index():
    query, builder = parse_filtered_list_query(CONTACT.filter_fields())
    context = list_context(_service(), query, builder)
    return render_list_page("contacts/index.html", table_block="contact_table", **context)


@bp.get("/contacts/export.csv")
def export():
    query = parse_export_query(CONTACT.filter_fields())
    rows = _service().export_rows(filter_spec=query.filter_spec, q=query.q, scope=query.scope, sort=query.sort)
    return entity_csv_response(CONTACT, rows)


# --- bulk actions (and the list's per-row delete, which is a bulk delete of one) ----------------


@bp.post("/contacts/bulk/delete")
def bulk_delete():
    query, builder = parse_filtered_list_query(CONTACT.filter_fields())
    service = _service()
    deleted = service.delete_many(get_uuid_list("ids"))
    response = _table(service, query, builder)
    return with_undo(
        response,
        f"Deleted {plural(len(deleted), 'contact')}.",
        undo_url=query.url(url_for("contacts.restore_many")),
        ids=deleted,
        target=TABLE,
    )


@bp.post("/contacts/bulk/restore")
def restore_many():
    query, builder = parse_filtered_list_query(CONTACT.filter_fields())
    service = _service()
    restored = service.restore_many(get_uuid_list("ids"))
    return with_toast(_table(service, query, builder), f"Restored {plural(len(restored), 'contact')}.")


@bp.post("/contacts/bulk/tag")
def bulk_tag():
    query, builder = parse_filtered_list_query(CONTACT.filter_fields())
    tag_id = parse_uuid(request.form.get("tag_id"), "tag_id") or abort(400, "Choose a tag.")
    service = _service()
    tagged = service.bulk_add_tag(get_uuid_list("ids"), tag_id=tag_id)
    return with_toast(_table(service, query, builder), f"Tagged {plural(len(tagged), 'contact')}.")


@bp.post("/contacts/bulk/owner")
def bulk_owner():
    query, builder = parse_filtered_list_query(CONTACT.filter_fields())
    owner_id = parse_uuid(request.form.get("owner_id"), "owner_id") or abort(400, "Choose an owner.")
    service = _service()
    changed = service.bulk_change_owner(get_uuid_list("ids"), owner_id=owner_id)
    return with_toast(_table(service, query, builder), f"Reassigned {plural(len(changed), 'contact')}.")


# --- detail, inline edit, delete / restore -------------------------------------------------------


def detail_context(service: ContactService, contact_id: uuid.UUID) -> dict[str, Any]:
    detail = service.detail(contact_id)
    return {"detail": detail, "contact": detail.contact, "inline_fields": service.INLINE_FIELDS}


@bp.get("/contacts/<uuid:contact_id>")
def detail(contact_id: uuid.UUID):
    return render_page("contacts/detail.html", **detail_context(_service(), contact_id))


def _inline_field(
    contact: Any,
    name: str,
    form: ContactForm | None = None,
    status: int = 200,
    *,
    original: str | None = None,
    conflict: str | None = None,
) -> Any:
    macro = get_template_attribute("components/contact_field.html", "inline_field")
    return macro(contact, name, form, original=original, conflict=conflict), status


def _check_inline(name: str) -> None:
    if name not in ContactService.INLINE_FIELDS:
        abort(404)


@bp.get("/contacts/<uuid:contact_id>/fields/<name>")
def show_field(contact_id: uuid.UUID, name: str):
    _check_inline(name)
    return _inline_field(_service().get(contact_id), name)


@bp.get("/contacts/<uuid:contact_id>/fields/<name>/edit")
def edit_field(contact_id: uuid.UUID, name: str):
    _check_inline(name)
    contact = _service().get(contact_id)
    return _inline_field(contact, name, ContactForm(obj=contact))


@bp.post("/contacts/<uuid:contact_id>/fields/<name>")
def update_field(contact_id: uuid.UUID, name: str):
    """Save one field. The form posts the value it showed (`original`): only a change of THIS field by
    someone else meanwhile is a conflict (409, the typed value kept; saving again overwrites it)."""
    _check_inline(name)
    service = _service()
    form = ContactForm()
    original = request.form.get("original")  # absent (an old page): last write wins
    if not form.validate_field(name):
        return _inline_field(service.get(contact_id), name, form, 422, original=original)
    try:
        contact = service.update_field(contact_id, name, form.values()[name], original=original)
    except ValidationError as error:
        form[name].errors = [error.field_errors.get(name, error.message)]
        return _inline_field(service.get(contact_id), name, form, 422, original=original)
    except Conflict as error:
        return _inline_field(service.get(contact_id), name, form, 409, conflict=conflict_message(error))
    return _inline_field(contact, name)


@bp.post("/contacts/<uuid:contact_id>/delete")
def delete(contact_id: uuid.UUID):
    contact = _service().delete(contact_id)
    if not wants_fragment():
        return redirect(url_for("contacts.index"), 303)
    response = render_page("contacts/detail.html", block="contact_main", contact=contact, deleted=True)
    return with_undo(
        response, f"Deleted {contact.full_name}.", undo_url=url_for("contacts.restore", contact_id=contact.id)
    )


@bp.post("/contacts/<uuid:contact_id>/restore")
def restore(contact_id: uuid.UUID):
    contact = _service().restore(contact_id)
    url = url_for("contacts.detail", contact_id=contact.id)
    return hx_location(url) if wants_fragment() else redirect(url, 303)


# --- create / edit ------------------------------------------------------------------------------


def form_context(service: ContactService, form: ContactForm, contact: Any = None) -> dict[str, Any]:
    owners, companies = service.form_choices()
    form.set_choices(companies=companies, owners=owners)
    duplicate = service.duplicate_of(form.email.data, exclude_id=contact.id if contact else None)
    return {"form": form, "contact": contact, "duplicate": duplicate}


def _save(service: ContactService, form: ContactForm, contact: Any = None):
    context = form_context(service, form, contact)
    status = 422
    if form.validate_on_submit():
        try:
            saved = (
                service.update(contact.id, expected_version=form.expected_version, **form.values())
                if contact
                else service.create(**form.values())
            )
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as error:  # a stale form: shown again with the typed values and who changed it
            apply_conflict(form, error)
            status = 409
        else:
            url = url_for("contacts.detail", contact_id=saved.id)
            return hx_location(url) if wants_fragment() else redirect(url, 303)
    return render_page("contacts/form.html", block="contact_form", status=status, **context)


@bp.get("/contacts/new")
def new():
    service = _service()
    form = ContactForm(owner_id=current_user.id)
    return render_page("contacts/form.html", **form_context(service, form))


@bp.post("/contacts")
def create():
    return _save(_service(), ContactForm())


@bp.get("/contacts/<uuid:contact_id>/edit")
def edit(contact_id: uuid.UUID):
    service = _service()
    contact = service.get_for_edit(contact_id)  # a form the user could not save is not offered
    return render_page("contacts/form.html", **form_context(service, ContactForm(obj=contact), contact))


@bp.post("/contacts/<uuid:contact_id>")
def update(contact_id: uuid.UUID):
    service = _service()
    return _save(service, ContactForm(), service.get_for_edit(contact_id))


@bp.get("/contacts/check-email")
def check_email():
    duplicate = _service().duplicate_of(get_text_param("email", max_length=254), exclude_id=get_uuid_param("exclude"))
    return render_fragments("contacts/form.html", ["email_warning"], duplicate=duplicate)

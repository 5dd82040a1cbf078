"""Contacts: the shared list (with bulk tag and owner change), forms and delete/Undo (views/generic.py),
the detail page, fields edited in place, and the duplicate-email check."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, get_template_attribute, request

from crm_web.entities import CONTACT
from crm_web.errors import Conflict, ValidationError
from crm_web.forms import conflict_message
from crm_web.forms.contacts import ContactForm
from crm_web.params import get_text_param, get_uuid_param
from crm_web.rendering import render_fragments, render_page
from crm_web.services.contacts import ContactService
from crm_web.views.custom import CustomValueViews
from crm_web.views.generic import FormViews, ListViews, RecordViews, acting
from crm_web.views.pickers import fit_owner_field, owner_options, picked_labels

bp = Blueprint("contacts", __name__)


ListViews(bp, CONTACT, ContactService)


# --- detail, inline edit, delete / restore -------------------------------------------------------


def detail_context(service: ContactService, contact_id: uuid.UUID) -> dict[str, Any]:
    detail = service.detail(contact_id)
    return {"detail": detail, "contact": detail.contact, "inline_fields": service.INLINE_FIELDS}


@bp.get("/contacts/<uuid:contact_id>")
def detail(contact_id: uuid.UUID):
    return render_page("contacts/detail.html", **detail_context(acting(ContactService), contact_id))


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
    return _inline_field(acting(ContactService).get(contact_id), name)


@bp.get("/contacts/<uuid:contact_id>/fields/<name>/edit")
def edit_field(contact_id: uuid.UUID, name: str):
    _check_inline(name)
    contact = acting(ContactService).get(contact_id)
    return _inline_field(contact, name, ContactForm(obj=contact))


@bp.post("/contacts/<uuid:contact_id>/fields/<name>")
def update_field(contact_id: uuid.UUID, name: str):
    """Save one field. The form posts the value it showed (`original`): only a change of THIS field by
    someone else meanwhile is a conflict (409, the typed value kept; saving again overwrites it)."""
    _check_inline(name)
    service = acting(ContactService)
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


# --- create / edit ------------------------------------------------------------------------------


def form_context(service: ContactService, form: ContactForm, contact: Any = None) -> dict[str, Any]:
    form.set_choices(owners=fit_owner_field(service.actor, form.owner_id, owner_options(service)))
    company = contact.primary_company if contact is not None else None
    return {
        "duplicate": service.duplicate_of(form.email.data, exclude_id=contact.id if contact else None),
        "picked": picked_labels(
            service.actor,
            {"primary_company_id": ("company", form.primary_company_id.data)},
            known={"primary_company_id": (company.id, company.name)} if company else None,
        ),
    }


CustomValueViews(bp, CONTACT, ContactService)
FormViews(bp, CONTACT, ContactService, ContactForm, form_context=form_context)
RecordViews(bp, CONTACT, ContactService, deleted_message=lambda contact: f"Deleted {contact.full_name}.")


@bp.get("/contacts/check-email")
def check_email():
    duplicate = acting(ContactService).duplicate_of(
        get_text_param("email", max_length=254), exclude_id=get_uuid_param("exclude")
    )
    return render_fragments("contacts/form.html", ["email_warning"], duplicate=duplicate)

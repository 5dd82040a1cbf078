"""Trash: every deleted record of the organisation (managers and admins), restore (whoever deleted a
record, or an admin: services/trash.py), permanent delete after a confirmation that names what will go
(admins), and each record's history."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user

from crm_web.entities import entity
from crm_web.errors import BadRequest
from crm_web.htmx import hx_trigger, wants_fragment
from crm_web.models import Role
from crm_web.params import get_choice_param
from crm_web.rendering import render_page, with_toast
from crm_web.services.custom_fields import CustomFieldService
from crm_web.services.trash import TRASH_KINDS, TRASH_TYPES, TrashRef, TrashService, parse_ref
from crm_web.views.generic import acting
from crm_web.views.listing import parse_list_query

bp = Blueprint("trash", __name__)

MAX_SELECTED = 1000
# Malformed types are a 404 from the URL map itself.
ENTITY_TYPE = "<any(" + ",".join(TRASH_TYPES) + "):entity_type>"


def _selected() -> list[TrashRef]:
    """The `item` values ("deal:<uuid>") of the form (POST) or the query string (GET); junk is a 400."""
    values = [v for v in request.values.getlist("item") if v.strip()]
    if len(values) > MAX_SELECTED:
        raise BadRequest(f"At most {MAX_SELECTED} records at once.")
    refs = [parse_ref(value) for value in values]
    valid = [ref for ref in refs if ref is not None]
    if len(valid) != len(refs):
        raise BadRequest("The selection contains an invalid record reference.")
    return valid


def _index_context() -> dict:
    query = parse_list_query()
    entity_type = get_choice_param("type", TRASH_TYPES)
    # The type filter rides along in every pagination and refresh link.
    query.filter_pairs = [("type", entity_type)] if entity_type else []
    page = acting(TrashService).list_trash(entity_type=entity_type, q=query.q, page=query.page, per_page=query.per_page)
    return {
        "page": page,
        "query": query,
        "entity_type": entity_type,
        "kinds": TRASH_KINDS,
        # Deleted custom fields: definitions, not rows (services/custom_fields.py); restored and purged
        # through the settings routes, which come back here.
        "trashed_fields": [(entity(name), cf) for name, cf in acting(CustomFieldService).trashed()],
        "can_manage": current_user.has_role(Role.ADMIN),
        "retention_days": current_app.config.get("TRASH_RETENTION_DAYS", 30),
    }


def _changed(message: str, kind: str = "success"):
    """After a restore or purge: htmx gets a toast and `trash-changed`; a plain form is redirected."""
    if wants_fragment():
        response = render_page("trash/index.html", block="trash_confirm")
        return hx_trigger(with_toast(response, message, kind), "trash-changed")
    flash(message, "info")
    return redirect(url_for("trash.index"), 303)


@bp.get("/trash")
def index():
    return render_page("trash/index.html", block="trash_table", **_index_context())


@bp.get(f"/trash/{ENTITY_TYPE}/<uuid:entity_id>")
def detail(entity_type: str, entity_id):
    service = acting(TrashService)
    entry = service.get_entry(entity_type, entity_id)
    return render_page(
        "trash/detail.html",
        block="trash_entry",
        entry=entry,
        can_manage=current_user.has_role(Role.ADMIN),
        can_restore=service.can_restore(entry.item),
    )


@bp.post("/trash/restore")
def restore():
    result = acting(TrashService).restore(_selected())
    return _changed(result.message, "info" if result.relocated or result.missing else "success")


@bp.get("/trash/purge")
def confirm_purge():
    items = acting(TrashService).preview_purge(_selected())
    # Inline (in the trash page) the confirmation posts with htmx; on its own page it is a plain form.
    return render_page("trash/confirm_purge.html", block="trash_confirm", items=items, inline=wants_fragment())


@bp.post("/trash/purge")
def purge():
    result = acting(TrashService).purge(_selected())
    return _changed(result.message)

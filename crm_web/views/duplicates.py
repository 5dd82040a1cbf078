"""Duplicates pages (`/contacts/duplicates`, `/companies/duplicates`, `/leads/duplicates`), "Not a
duplicate", the side-by-side merge and its Undo (services/duplicates)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for

from crm_web.entities import ENTITIES
from crm_web.errors import BadRequest, Conflict
from crm_web.forms import conflict_message
from crm_web.htmx import hx_location, wants_fragment
from crm_web.params import get_int_param, get_text_param, get_uuid_list, get_uuid_param, parse_uuid
from crm_web.rendering import render_page, see_other, with_toast
from crm_web.services.duplicates.service import DuplicateService
from crm_web.views.generic import acting

bp = Blueprint("duplicates", __name__)

KINDS = {"contacts": "contact", "companies": "company", "leads": "lead"}
PLURAL = "<any(contacts,companies,leads):plural>"


def _entity(plural: str) -> str:
    if plural not in KINDS:
        abort(404)
    return KINDS[plural]


def _index(plural: str, *, block: str | None = None, message: str | None = None) -> Any:
    entity_type = _entity(plural)
    # A POST (Not a duplicate, Propose) answers with the page it was sent from.
    number = get_int_param("page", 1, min_value=1, max_value=1_000_000, args=request.values)
    group = parse_uuid(request.values.get("group"), "group")
    page = acting(DuplicateService).page(entity_type, page=number, group=group)
    response = render_page(
        "duplicates/index.html",
        block=block,
        page=page,
        plural=plural,
        entity=ENTITIES[entity_type],
    )
    return with_toast(response, message) if message and wants_fragment() else response


@bp.get(f"/{PLURAL}/duplicates")
def index(plural: str):
    """The whole page (also after an Undo navigates here); htmx (another page of groups, the refresh
    while a scan runs) gets the groups only, as "Not a duplicate" does. `page`: 25 groups a page;
    `group` (a record id): only that record's group, with all its records."""
    # Only a request aimed at the groups gets them alone (an Undo's HX-Location swaps the whole body).
    aimed = request.headers.get("HX-Target") == "duplicate-groups"
    return _index(plural, block="duplicate_groups" if aimed else None)


@bp.get(f"/{PLURAL}/duplicates/check")
def check(plural: str):
    """The create and edit forms' live warning: likely duplicates of what is typed, with links."""
    entity_type = _entity(plural)
    values = {name: get_text_param(name, max_length=255) for name in ("email", "phone", "name", "website")}
    if entity_type == "contact":  # the email field has its own warning (contacts.check_email)
        values.pop("email")
    found = acting(DuplicateService).candidates(entity_type, values, exclude_id=get_uuid_param("exclude"))
    return render_template(
        "duplicates/warning.html",
        found=found,
        plural=plural,
        entity=ENTITIES[entity_type],
        exclude=request.args.get("exclude"),
    )


@bp.post(f"/{PLURAL}/duplicates/dismiss")
def dismiss(plural: str):
    acting(DuplicateService).dismiss(_entity(plural), get_uuid_list("ids"))
    if not wants_fragment():
        flash("Marked as not duplicates.", "info")
        return see_other(url_for("duplicates.index", plural=plural))
    return _index(
        plural, block="duplicate_groups", message="Marked as not duplicates: they will not be suggested again."
    )


@bp.post(f"/{PLURAL}/duplicates/scan")
def scan(plural: str):
    """ "Scan again": a background job recomputes the stored groups; the page shows when it is done."""
    acting(DuplicateService).start_scan(_entity(plural))
    url = url_for("duplicates.index", plural=plural)
    return hx_location(url) if wants_fragment() else see_other(url)


@bp.post(f"/{PLURAL}/duplicates/propose")
def propose(plural: str):
    """ "Propose merge": what a sales user can do with a group (managers and admins see it and decide)."""
    acting(DuplicateService).propose(_entity(plural), get_uuid_list("ids"))
    message = "Merge proposed: a manager will review it."
    if not wants_fragment():
        flash(message, "info")
        return see_other(url_for("duplicates.index", plural=plural))
    return _index(plural, block="duplicate_groups", message=message)


@bp.post(f"/{PLURAL}/duplicates/proposals/<uuid:proposal_id>/dismiss")
def dismiss_proposal(plural: str, proposal_id: uuid.UUID):
    acting(DuplicateService).dismiss_proposal(_entity(plural), proposal_id)
    message = "Proposal dismissed."
    if not wants_fragment():
        flash(message, "info")
        return see_other(url_for("duplicates.index", plural=plural))
    return _index(plural, block="duplicate_groups", message=message)


@bp.get(f"/{PLURAL}/duplicates/merge")
def merge_form(plural: str):
    entity_type = _entity(plural)
    ids = get_uuid_list("ids", source="args", limit=20)
    plan = acting(DuplicateService).plan(entity_type, ids, get_uuid_param("survivor"))
    return render_page("duplicates/merge.html", plan=plan, plural=plural, entity=ENTITIES[entity_type])


@bp.post(f"/{PLURAL}/duplicates/merge")
def merge(plural: str):
    entity_type = _entity(plural)
    service = acting(DuplicateService)
    ids = get_uuid_list("ids", limit=20)
    survivor = parse_uuid(request.form.get("survivor"), "survivor")
    if survivor is None:
        raise BadRequest("Choose the record that survives.")
    choices: dict[str, uuid.UUID] = {}
    versions: dict[uuid.UUID, int] = {}
    for key, value in request.form.items():
        if key.startswith("field_"):
            parsed = parse_uuid(value, key)
            if parsed is not None:
                choices[key.removeprefix("field_")] = parsed
        elif key.startswith("version_"):
            ident = parse_uuid(key.removeprefix("version_"), key)
            if ident is not None and value.strip().isdigit() and len(value.strip()) < 10:
                versions[ident] = int(value)
    try:
        merge = service.merge(entity_type, ids, survivor_id=survivor, choices=choices, versions=versions)
    except Conflict as error:
        plan = service.plan(entity_type, ids, survivor)
        return render_page(
            "duplicates/merge.html",
            status=409,
            plan=plan,
            plural=plural,
            entity=ENTITIES[entity_type],
            conflict=conflict_message(error),
        )
    result = service.plan_after(merge)
    count = len(merge.merged_ids)
    message = f"Merged {count + 1} {ENTITIES[entity_type].plural} into {result['label']}."
    undo = url_for("duplicates.undo", merge_id=merge.id)
    return render_page(
        "duplicates/merged.html",
        plural=plural,
        entity=ENTITIES[entity_type],
        result=result,
        merge=merge,
        message=message,
        undo_url=undo,
    )


@bp.get("/duplicates/merges/<uuid:merge_id>/history")
def merged_history(merge_id: uuid.UUID):
    """The merged records' own history, linked from the survivor's "merged from ..." entry."""
    result = acting(DuplicateService).merged_history(merge_id)
    entity = ENTITIES[result["merge"].entity_type]
    return render_page("duplicates/history.html", result=result, entity=entity)


@bp.get("/duplicates/merges/<uuid:merge_id>/undo")
def undo_confirm(merge_id: uuid.UUID):
    """What an Undo could no longer restore, and the question whether to undo the rest (nothing written)."""
    result = acting(DuplicateService).undo(merge_id, confirmed=False, dry_run=True)
    return render_page("duplicates/undo_confirm.html", result=result, plural=ENTITIES[result.merge.entity_type].plural)


@bp.post("/duplicates/merges/<uuid:merge_id>/undo")
def undo(merge_id: uuid.UUID):
    """Undo a merge (the toast's button, the survivor's history). When part of it can no longer be undone
    exactly, nothing is done: the confirmation page says what and asks (its form confirms)."""
    service = acting(DuplicateService)
    result = service.undo(merge_id, confirmed=request.form.get("confirm") == "1")
    plural = ENTITIES[result.merge.entity_type].plural
    if not result.done:
        if wants_fragment():  # the toast's button swaps nothing: go to the question
            response = make_response("", 204)
            response.headers["HX-Redirect"] = url_for("duplicates.undo_confirm", merge_id=merge_id)
            return response
        return render_page("duplicates/undo_confirm.html", result=result, plural=plural)
    message = "The merge was undone."
    if result.problems:
        message += " " + " ".join(result.problems)
    flash(message, "info")
    url = url_for("duplicates.index", plural=plural)
    return hx_location(url) if wants_fragment() else see_other(url)

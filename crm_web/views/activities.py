"""Activities: the list with quick views and filters, the reusable new-activity form, edit,
one-click complete/reopen, soft delete with Undo, and record timelines."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from crm_web import columns
from crm_web.entities import ACTIVITY
from crm_web.errors import Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors
from crm_web.htmx import hx_trigger, wants_fragment
from crm_web.params import get_choice_param, get_uuid_param
from crm_web.rendering import render_page, with_toast, with_undo
from crm_web.services.activities import LINKS, QUICK_VIEW_KEYS, QUICK_VIEWS, ActivityService, Links
from crm_web.views.columns import save_columns, visible_columns
from crm_web.views.filtering import builder_fields, parse_filtered_list_query, render_list_page
from crm_web.views.generic import acting
from crm_web.views.listing import ListQuery
from crm_web.views.pickers import fit_owner_field, owner_options, picked_labels

bp = Blueprint("activities", __name__)

INDEX = "activities/index.html"
FORM = "activities/form.html"
TIMELINE = "activities/timeline.html"


def _links_from_args() -> Links:
    return Links(**{name: get_uuid_param(name) for name in LINKS})


def _list_context(query: ListQuery) -> dict[str, Any]:
    """Everything the list page (and its table and builder blocks) shows, besides query and builder."""
    view = get_choice_param("view", QUICK_VIEW_KEYS, "mine")
    service = acting(ActivityService)
    page = service.list_page(view=view, **query.page_args())
    # The quick view travels with every list link (sort, pages, search) like the filter does.
    query.filter_pairs = ([("view", view)] if view != "mine" else []) + list(query.filter_pairs)
    fields_meta = builder_fields(ACTIVITY.filter_fields(), choices={"owner": service.owner_choices()})
    return {
        "page": page,
        "view": view,
        "quick_views": QUICK_VIEWS,
        "fields_meta": fields_meta,
        "title": "Activities",
        "visible_columns": visible_columns("activity", query),
        "all_columns": columns.available("activity", None),
    }


def _form_context(form, *, activity=None, links: Links | None = None) -> dict[str, Any]:
    service = acting(ActivityService)
    form.set_owner_choices(fit_owner_field(service.actor, form.owner_id, owner_options(service)))
    links = links or Links()
    link_labels = service.link_labels(links)
    chosen = {f"{kind}_id": (kind, form[f"{kind}_id"].data) for kind in ("contact", "company", "deal", "lead")}
    known = {f"{kind}_id": (value, link_labels[kind]) for kind, value in links.items() if kind in link_labels}
    return {
        "form": form,
        "activity": activity,
        "links": links,
        "link_labels": link_labels,
        "picked": picked_labels(service.actor, chosen, known=known),
        "title": "Edit activity" if activity else "New activity",
    }


def _new_form(links: Links):
    from crm_web.forms.activities import ActivityForm

    form = ActivityForm(formdata=None)
    form.owner_id.data = str(current_user.id)
    for name, value in links.items():
        getattr(form, f"{name}_id").data = str(value)
    return form


@bp.get("/activities")
def index():
    query, builder = parse_filtered_list_query(ACTIVITY.filter_fields())
    return render_list_page(
        INDEX,
        query=query,
        builder=builder,
        list_url=url_for("activities.index"),
        table_block="activity_table",
        **_list_context(query),
    )


@bp.post("/activities/columns")
def columns_choice():
    query, _ = parse_filtered_list_query(ACTIVITY.filter_fields())
    view = get_choice_param("view", QUICK_VIEW_KEYS, "mine")
    query.filter_pairs = ([("view", view)] if view != "mine" else []) + list(query.filter_pairs)
    return save_columns("activity", query, url_for("activities.index"))


@bp.get("/activities/new")
def new():
    links = _links_from_args()
    return render_page(FORM, block="activity_form", **_form_context(_new_form(links), links=links))


@bp.post("/activities")
def create():
    from crm_web.forms.activities import ActivityForm

    form = ActivityForm()
    links = Links(**{name: _form_uuid(form, f"{name}_id") for name in LINKS})
    context = _form_context(form, links=links)
    if not form.validate():
        return render_page(FORM, block="activity_form", status=422, **context)
    try:
        activity = acting(ActivityService).create(**form.values())
    except ValidationError as error:
        return _form_errors(form, error, context)
    if not wants_fragment():
        return redirect(url_for("activities.index"), code=303)
    response = render_page(FORM, block="activity_form", **_form_context(_new_form(links), links=links))
    return hx_trigger(with_toast(response, f"Activity “{activity.subject}” created."), "activities-changed")


def _form_errors(form, error: ValidationError, context: dict[str, Any]):
    """Service-side validation (linked records, owner) shown inline like the form's own errors."""
    apply_errors(form, error)
    return render_page(FORM, block="activity_form", status=422, **context)


def _form_uuid(form, name: str) -> uuid.UUID | None:
    raw = getattr(form, name).data
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None  # the form's own validator reports it


@bp.get("/activities/<uuid:activity_id>/edit")
def edit(activity_id: uuid.UUID):
    from crm_web.forms.activities import ActivityForm

    service = acting(ActivityService)
    activity = service.get_for_edit(activity_id)  # a form the user could not save is not offered
    form = ActivityForm(formdata=None)
    form.fill_from(activity)
    return render_page(FORM, block="activity_form", **_form_context(form, activity=activity))


@bp.post("/activities/<uuid:activity_id>")
def update(activity_id: uuid.UUID):
    from crm_web.forms.activities import ActivityForm

    service = acting(ActivityService)
    activity = service.get_for_edit(activity_id)
    form = ActivityForm()
    context = _form_context(form, activity=activity)
    if not form.validate():
        return render_page(FORM, block="activity_form", status=422, **context)
    try:
        service.update(activity_id, expected_version=form.expected_version, **form.values())
    except ValidationError as error:
        return _form_errors(form, error, context)
    except Conflict as error:  # a stale form: shown again with the typed values and who changed it
        apply_conflict(form, error)
        return render_page(FORM, block="activity_form", status=409, **context)
    return redirect(url_for("activities.index"), code=303)


def _row_response(activity, message: str, **toast: Any):
    if not wants_fragment():
        return redirect(url_for("activities.index"), code=303)
    response = render_page(INDEX, block="activity_row", activity=activity)
    return with_toast(response, message, **toast)


@bp.post("/activities/<uuid:activity_id>/complete")
def complete(activity_id: uuid.UUID):
    activity = acting(ActivityService).set_completed(activity_id, completed=True)
    return hx_trigger(_row_response(activity, f"Completed “{activity.subject}”."), "activities-toggled")


@bp.post("/activities/<uuid:activity_id>/reopen")
def reopen(activity_id: uuid.UUID):
    activity = acting(ActivityService).set_completed(activity_id, completed=False)
    return hx_trigger(_row_response(activity, f"Reopened “{activity.subject}”."), "activities-toggled")


@bp.post("/activities/<uuid:activity_id>/delete")
def delete(activity_id: uuid.UUID):
    activity = acting(ActivityService).delete(activity_id)
    if not wants_fragment():
        return redirect(url_for("activities.index"), code=303)
    response = render_page(INDEX, block="deleted_row", activity=activity)
    # No activities-changed here: the list table reloads on it, which would drop the placeholder
    # row the Undo swaps back in place.
    return with_undo(
        response,
        f"Deleted “{activity.subject}”.",
        undo_url=url_for("activities.restore", activity_id=activity.id),
        target=f"#activity-{activity.id}",
    )


@bp.post("/activities/<uuid:activity_id>/timeline-delete")
def timeline_delete(activity_id: uuid.UUID):
    """A delete from a record's timeline: the item becomes a placeholder; Undo's restore sends
    activities-toggled, on which the timeline reloads itself with the item back in place."""
    activity = acting(ActivityService).delete(activity_id)
    if not wants_fragment():
        return redirect(url_for("activities.index"), code=303)
    response = render_page(TIMELINE, block="deleted_item", activity=activity)
    return hx_trigger(
        with_undo(
            response, f"Deleted “{activity.subject}”.", undo_url=url_for("activities.restore", activity_id=activity.id)
        ),
        "activities-changed",
    )


@bp.post("/activities/<uuid:activity_id>/restore")
def restore(activity_id: uuid.UUID):
    activity = acting(ActivityService).restore(activity_id)
    return hx_trigger(_row_response(activity, f"Restored “{activity.subject}”."), "activities-toggled")


@bp.get("/activities/timeline")
def timeline():
    links = _links_from_args()
    return render_page(
        TIMELINE, block="activity_timeline", activities=acting(ActivityService).timeline(links=links), links=links
    )

"""Activities: the list with quick views and filters, the reusable new-activity form, edit,
one-click complete/reopen, soft delete with Undo, and record timelines."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, redirect, request, url_for
from flask_login import current_user

from crm_web import columns
from crm_web.csv_export import entity_csv_response
from crm_web.entities import ACTIVITY
from crm_web.errors import BadRequest, Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors
from crm_web.htmx import hx_trigger, wants_fragment
from crm_web.models import Role
from crm_web.params import get_choice_param, get_text_param, get_uuid_param, is_whole_number
from crm_web.rendering import render_page, see_other, with_toast, with_undo
from crm_web.services.activities import LINKS, QUICK_VIEW_KEYS, QUICK_VIEWS, ActivityService, Links
from crm_web.services.calendar import HOURS, MODES, WHO, CalendarService, due_at_from
from crm_web.views.columns import save_columns, visible_columns
from crm_web.views.filtering import builder_fields, checked_for_export, parse_filtered_list_query, render_list_page
from crm_web.views.generic import BulkActions, acting
from crm_web.views.listing import ListQuery
from crm_web.views.pickers import fit_owner_field, owner_options, picked_labels
from crm_web.views.saved_views import ListOpening, open_list

bp = Blueprint("activities", __name__)

# The list's bulk changes besides delete: owner, complete (status) and reschedule (due date).
BULK_FIELDS = ("owner_id", "status", "due_at")

INDEX = "activities/index.html"
FORM = "activities/form.html"
TIMELINE = "activities/timeline.html"


def _links_from_args() -> Links:
    return Links(**{name: get_uuid_param(name) for name in LINKS})


def _list_context(query: ListQuery, opening: ListOpening) -> dict[str, Any]:
    """Everything the list page (and its table and builder blocks) shows, besides query and builder.

    The quick view is `view` (`?view=overdue`: the built-in views of views/saved_views); with a saved
    view open, `view` names it and the quick view it keeps is `quick`."""
    args = opening.args
    saved = opening.tab is not None
    view = get_choice_param("quick" if saved else "view", QUICK_VIEW_KEYS, "mine", args=args)
    service = acting(ActivityService)
    page = service.list_page(view=view, **query.page_args())
    quick = [("quick", view)] if view != "mine" else []
    state = [pair for pair in query.state_pairs() if pair[0] not in ("view", "quick")]
    if not saved:
        # The quick view travels with every list link (sort, pages, search) like the filter does.
        query.filter_pairs = ([("view", view)] if view != "mine" else []) + list(query.filter_pairs)
    owners = service.owner_choices()
    fields_meta = builder_fields(ACTIVITY.filter_fields(), choices={"owner": owners})
    return {
        "entity": ACTIVITY,
        "page": page,
        "view": view,
        "view_input": opening.key if saved else view,
        "current_tab": opening.key if saved else (view if view != "mine" else None),
        "quick_views": QUICK_VIEWS,
        "fields_meta": fields_meta,
        "owners": owners,
        "title": "Activities",
        "opening": opening,
        "view_state": quick + state,
        "visible_columns": visible_columns("activity", query),
        "all_columns": columns.available("activity", None),
    }


def _opened() -> tuple[ListQuery, Any, ListOpening]:
    """The list state of the request, after opening the saved view it names."""
    opening = open_list("activities")
    query, builder = parse_filtered_list_query(ACTIVITY.filter_fields(), opening.args)
    opening.apply(query, ACTIVITY.filter_fields())
    return query, builder, opening


def _table(service: ActivityService):
    """After a bulk action: the table block in the list state of the query string."""
    query, builder, opening = _opened()
    list_url = url_for("activities.index")
    if not wants_fragment():
        return see_other(query.url(list_url))
    return render_page(
        INDEX,
        block="activity_table",
        query=query,
        builder=builder,
        list_url=list_url,
        **_list_context(query, opening),
    )


BulkActions(bp, ACTIVITY, ActivityService, table=_table, table_id="#activity-table", fields=BULK_FIELDS)


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
    query, builder, opening = _opened()
    return render_list_page(
        INDEX,
        query=query,
        builder=builder,
        list_url=url_for("activities.index"),
        table_block="activity_table",
        **_list_context(query, opening),
    )


@bp.get("/activities/export.csv")
def export():
    """The CSV export of the quick view, searched and filtered, as the list shows it."""
    query, builder, opening = _opened()
    query = checked_for_export(query, builder)
    saved = opening.tab is not None
    view = get_choice_param("quick" if saved else "view", QUICK_VIEW_KEYS, "mine", args=opening.args)
    service = acting(ActivityService)
    rows = service.export_view(view=view, filter_spec=query.filter_spec, q=query.q, scope=query.scope, sort=query.sort)
    return entity_csv_response(ACTIVITY, rows, day=service.actor.today())


@bp.post("/activities/columns")
def columns_choice():
    query, _, opening = _opened()
    if opening.tab is None:  # the quick view stays as the list showed it
        view = get_choice_param("view", QUICK_VIEW_KEYS, "mine", args=opening.args)
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


# --- the calendar ------------------------------------------------------------------------------

CALENDAR = "activities/calendar.html"


def _calendar_state() -> dict[str, Any]:
    """The calendar's view from the query string (bad values are 400s, like every list parameter)."""
    raw = get_text_param("date", max_length=10)
    try:
        anchor = date.fromisoformat(raw) if raw else None
    except ValueError:
        raise BadRequest("date must be YYYY-MM-DD.") from None
    return {
        "mode": get_choice_param("mode", MODES, "week"),
        "who": get_choice_param("who", WHO, "me"),
        "anchor": anchor,
    }


_SLOT = uuid.UUID(int=0)


def _per_activity(endpoint: str, suffix: str = "") -> Callable[[uuid.UUID], str]:
    """`endpoint`'s URL for any activity id (then `suffix`), routed once for all of a page's items."""
    before, after = url_for(endpoint, activity_id=_SLOT).split(str(_SLOT))
    return lambda activity_id: f"{before}{activity_id}{after}{suffix}"


def _calendar_context() -> dict[str, Any]:
    query, builder = parse_filtered_list_query(ACTIVITY.filter_fields())
    service = acting(CalendarService)
    state = _calendar_state()
    calendar = None
    if not builder.has_errors:
        calendar = service.calendar(filter_spec=query.filter_spec, **state)
    fields_meta = builder_fields(ACTIVITY.filter_fields(), choices={"owner": service.owner_choices()})

    def view_query(**changes: Any) -> str:
        anchor = state["anchor"].isoformat() if state["anchor"] else None
        view = {"mode": state["mode"], "who": state["who"], "date": anchor, **changes}
        return urlencode([(k, str(v)) for k, v in view.items() if v is not None] + list(query.filter_pairs))

    def calendar_url(endpoint: str = "activities.calendar", *, activity_id: Any = None, **changes: Any) -> str:
        """This calendar's URL (or a reschedule's) with its view and filter, `changes` applied."""
        base = url_for(endpoint, activity_id=activity_id) if activity_id else url_for(endpoint)
        return base + "?" + view_query(**changes)

    return {
        "calendar": calendar,
        "state": state,
        "query": query,
        "builder": builder,
        "fields_meta": fields_meta,
        "calendar_url": calendar_url,
        # Every item links to its edit page and its reschedule URL: built once, not per item.
        "edit_url": _per_activity("activities.edit"),
        "reschedule_url": _per_activity("activities.reschedule", "?" + view_query()),
        "can_see_team": service.actor.has_role(Role.MANAGER),
        "hours": HOURS,
        "title": "Calendar",
    }


@bp.get("/activities/calendar")
def calendar():
    context = _calendar_context()
    if context["builder"].has_errors:
        response = render_page(CALENDAR, block="filter_builder", status=422, **context)
        if wants_fragment():
            response.headers["HX-Retarget"] = "#filter-builder"
            response.headers["HX-Reswap"] = "outerHTML"
        return response
    return render_page(CALENDAR, block="calendar_grid", **context)


def _due_at_from_form(service: CalendarService, current: datetime | None) -> datetime:
    """The new due time: `due_at` (an ISO instant, the Undo's), or a local `date` with an optional
    `time` (HH:MM); a day without a time keeps the activity's local time of day."""
    raw = request.form.get("due_at", "")
    if raw:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise BadRequest("due_at must be an ISO date and time.") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        day = date.fromisoformat(request.form.get("date", ""))
        raw_time = request.form.get("time", "")
        if raw_time:
            at = time.fromisoformat(raw_time)
        elif current is not None:
            at = current.astimezone(service.actor.zone).time().replace(tzinfo=None)
        else:
            at = time(9, 0)
    except ValueError:
        raise BadRequest("date must be YYYY-MM-DD and time HH:MM.") from None
    return due_at_from(day, at, service.actor.zone)


@bp.post("/activities/<uuid:activity_id>/reschedule")
def reschedule(activity_id: uuid.UUID):
    """A drag on the calendar (or its Undo): the new due time, refused if the activity changed since
    the page showed it (409 with who changed it); answers with the calendar and an Undo toast."""
    service = acting(CalendarService)
    current = service.get_for_edit(activity_id)
    version = request.form.get("version", "")
    if version and not is_whole_number(version):
        raise BadRequest("version must be a whole number.")
    activity, previous = service.reschedule(
        activity_id,
        due_at=_due_at_from_form(service, current.due_at),
        expected_version=int(version) if version else None,
    )
    if not wants_fragment():
        return redirect(url_for("activities.calendar"), code=303)
    context = _calendar_context()
    response = render_page(CALENDAR, block="calendar_grid", **context)
    local = activity.due_at.astimezone(service.actor.zone) if activity.due_at else None
    message = f"Moved “{activity.subject}” to {local:%a %d %b %H:%M}." if local else f"Moved “{activity.subject}”."
    undo: dict[str, Any] = {}
    if previous is not None:
        undo = {
            "undo_url": context["calendar_url"]("activities.reschedule", activity_id=activity.id),
            "undo_vals": {"due_at": previous.isoformat(), "version": str(activity.version)},
            "undo_target": "#calendar",
        }
    return hx_trigger(with_toast(response, message, **undo), "activities-toggled")

"""Saved views on every list and the board: opening one (`?view=<id>`), its tabs, and saving,
changing, deleting (with Undo), ordering, hiding and choosing the default.

`open_list(list_key)` is what a list page calls first: it turns the request into the arguments the
list parses as usual (a view's stored state, or the URL's), so a view costs the list no other code.
`?view=<id>` shows the view's state; `?view=<id>&state=1&...` the state given in the URL, which the
page compares with the view's to offer Save / Save as new. A bare list URL (the navigation's link)
opens the user's default view. A list page renders its whole tab bar: no statement when the cache
holds the user's tabs of the list, else one (which fills it); the answers to changes to the views
render the bar alone. Opening a saved view costs one statement (a built-in, none).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from crm_web.entities import Entity
from crm_web.errors import BadRequest, NotFound
from crm_web.htmx import hx_location, wants_fragment
from crm_web.rendering import render_page, see_other, with_toast, with_undo
from crm_web.services.base import Actor
from crm_web.services.saved_views import (
    LISTS,
    SavedViewService,
    Tab,
    ViewList,
    clean_state,
    parse_view_id,
    prefs_of,
    view_list,
)
from crm_web.views.filtering import parse_filtered_list_query
from crm_web.views.listing import ListQuery

bp = Blueprint("saved_views", __name__)

TABS = "saved_views/tabs.html"
MAX_KEY = 64


def _service() -> SavedViewService:
    # Not views.generic.acting: generic imports this module.
    return SavedViewService(Actor.of(current_user))


@dataclass
class ListOpening:
    """How a list was opened: with which view (if any), from which arguments."""

    vlist: ViewList
    args: Mapping[str, Any]
    tab: Tab | None = None
    stored: MultiDict[str, str] | None = None  # the open view's state (without dropped conditions)
    dropped: list[str] = field(default_factory=list)
    deleted_name: str | None = None

    @property
    def key(self) -> str | None:
        return self.tab.key if self.tab is not None else None

    def prefix(self, args: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(k, str(args.get(k))) for k in self.vlist.prefix_keys if args.get(k)]

    def apply(self, query: ListQuery, fields: Any) -> ListQuery:
        """Name the open view on the query (its links keep it) with the view's own state to compare."""
        if self.tab is None or self.stored is None:
            return query
        query.view_key = self.tab.key
        query.prefix_pairs = self.prefix(self.args)
        stored, _ = parse_filtered_list_query(fields, self.stored)
        stored.prefix_pairs = self.prefix(self.stored)
        query.view_pairs = stored.state_pairs()
        return query


def org_filter_fields(entity: Entity) -> Mapping[str, Any]:
    """The entity's filter whitelist with the signed-in user's organisation's custom fields (loaded with
    the user: no statement), so a view's condition on a live custom field is kept."""
    from crm_web import custom_fields

    custom = custom_fields.live_fields(current_user.org.custom_fields, entity.name)
    if not custom:
        return entity.filter_fields()
    return {**entity.filter_fields(), **custom_fields.filter_fields(entity.model, custom)}


def open_list(list_key: str) -> ListOpening:
    """The list's arguments, after opening the view the URL names (or, on a bare list URL, the
    user's default view). Another organisation's or someone's private view: NotFound."""
    vlist = LISTS[list_key]
    args = request.args
    key = args.get("view", "").strip()
    prefs = prefs_of(current_user, list_key)
    from_default = False
    if not key and not args and not wants_fragment():
        key = str(prefs.get("default") or "")
        from_default = True
    if not key:
        return ListOpening(vlist, args)
    if len(key) > MAX_KEY:
        raise BadRequest("Parameter 'view' is not a valid view id.")
    if vlist.native_builtins and parse_view_id(key) is None:
        # The list's own `view` parameter names its built-ins (the activities' quick views).
        return ListOpening(vlist, MultiDict([("view", key)]) if from_default else args)
    service = _service()
    try:
        opened = service.open(list_key, key, prefs)
    except NotFound:
        if from_default:  # a default view deleted since, or no longer shared: the plain list
            return ListOpening(vlist, MultiDict())
        raise
    if opened.tab is None:
        if from_default:
            return ListOpening(vlist, MultiDict())
        return ListOpening(vlist, MultiDict(), deleted_name=opened.deleted_name)
    tab = opened.tab
    cleaned = clean_state(vlist, tab.query, org_filter_fields(vlist.entity_def))
    stored: MultiDict[str, str] = MultiDict(cleaned.pairs)
    if args.get("state"):
        effective: MultiDict[str, str] = MultiDict((k, v) for k, v in args.items(multi=True) if k != "view")
    else:
        effective = MultiDict(stored)
        for key in ("page", "cursor"):  # where in the view's rows, never part of the view
            if args.get(key):
                effective[key] = args[key]
    return ListOpening(vlist, effective, tab=tab, stored=stored, dropped=cleaned.dropped)


def save_query(pairs: list[tuple[str, str]]) -> str:
    """The state a "Save view" form posts."""
    return urlencode(pairs, safe=":,")


# --- the tabs ------------------------------------------------------------------------------


def _prefs(list_key: str) -> dict[str, Any]:
    return prefs_of(current_user, list_key)


def _tabs_response(list_key: str, current: str | None, prefs: Mapping[str, Any] | None = None) -> Any:
    vlist = view_list(list_key)
    prefs = _prefs(list_key) if prefs is None else prefs
    tabs = _service().tabs(list_key, prefs)
    return render_page(
        TABS,
        block="view_tabs",
        vlist=vlist,
        tabs=tabs,
        current=current,
        has_default=bool(prefs.get("default")),
        list_url=url_for(vlist.endpoint),
    )


def _current() -> str | None:
    raw = (request.values.get("current") or "").strip()
    return raw[:MAX_KEY] or None


@bp.get("/views/<list_key>/tabs")
def tabs(list_key: str) -> ResponseReturnValue:
    """The tab bar of a list alone, as a fragment (its page renders the same bar)."""
    vlist = view_list(list_key)
    if not wants_fragment():
        return see_other(url_for(vlist.endpoint))
    return _tabs_response(list_key, _current())


def _opened_url(view_list_key: str, view_id: uuid.UUID | str) -> str:
    return url_for(view_list(view_list_key).endpoint, view=str(view_id))


def _navigate(url: str) -> ResponseReturnValue:
    return hx_location(url) if wants_fragment() else see_other(url)


def _form_text(name: str, limit: int = 5000) -> str:
    return (request.form.get(name) or "")[:limit]


def _form_shared() -> bool | None:
    raw = request.form.get("visibility")
    if raw is None:
        return None
    if raw not in ("private", "organisation"):
        raise BadRequest("Choose who sees the view: just you, or the whole organisation.")
    return raw == "organisation"


@bp.post("/views/<list_key>")
def create(list_key: str) -> ResponseReturnValue:
    """Save the list state posted as a new view, then open it."""
    view_list(list_key)
    view = _service().create(
        list_key, name=_form_text("name", 200), query=_form_text("query"), shared=bool(_form_shared())
    )
    return _navigate(_opened_url(list_key, view.id))


@bp.post("/views/<uuid:view_id>/save")
def update(view_id: uuid.UUID) -> ResponseReturnValue:
    """Save the posted state into the view (and/or a new name or visibility), then open it."""
    query = request.form.get("query")
    name = request.form.get("name")
    view = _service().update(
        view_id,
        name=name[:200] if name is not None else None,
        query=query[:5000] if query is not None else None,
        shared=_form_shared(),
    )
    return _navigate(_opened_url(view.list_key, view.id))


@bp.post("/views/<uuid:view_id>/delete")
def delete(view_id: uuid.UUID) -> ResponseReturnValue:
    view = _service().delete(view_id)
    if not wants_fragment():
        return see_other(url_for(view_list(view.list_key).endpoint, state=1))
    response = _tabs_response(view.list_key, _current())
    return with_undo(
        response,
        f"Deleted the view {view.name}.",
        undo_url=url_for("saved_views.restore", view_id=view.id, current=_current()),
        target="#view-tabs",
    )


@bp.post("/views/<uuid:view_id>/restore")
def restore(view_id: uuid.UUID) -> ResponseReturnValue:
    view = _service().restore(view_id)
    if not wants_fragment():
        return see_other(_opened_url(view.list_key, view.id))
    return with_toast(_tabs_response(view.list_key, _current()), f"Restored the view {view.name}.")


@bp.post("/views/<list_key>/order")
def reorder(list_key: str) -> ResponseReturnValue:
    """The tabs in the order the user dragged them to."""
    keys = [k[:MAX_KEY] for k in request.form.getlist("key")]
    prefs = _service().reorder(list_key, keys)
    return _tabs_response(list_key, _current(), prefs)


@bp.post("/views/<list_key>/default")
def set_default(list_key: str) -> ResponseReturnValue:
    """The view the navigation opens this list with (empty: the plain list)."""
    key = _form_text("key", MAX_KEY).strip() or None
    prefs = _service().set_default(list_key, key)
    message = "The list now opens with this view." if key else "The list now opens without a view."
    return with_toast(_tabs_response(list_key, _current(), prefs), message)


@bp.post("/views/<list_key>/hidden")
def set_hidden(list_key: str) -> ResponseReturnValue:
    """Hide a tab for oneself (a built-in or someone else's view), or show it again."""
    key = _form_text("key", MAX_KEY).strip()
    hidden = request.form.get("hidden") == "1"
    prefs = _service().set_hidden(list_key, key, hidden, _prefs(list_key))
    return _tabs_response(list_key, _current(), prefs)

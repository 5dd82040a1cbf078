"""Saved views: named list states, their tabs, and each user's order, hidden built-ins and default.

A view stores its list's state as the query string the list itself writes (the filter in its
canonical encoding, q, scope, sort, per_page, the column choice `cols`, the board's pipeline, the
activities' quick view), so opening one is parsing that string like a URL. A user's own views are
theirs; `shared` ones are seen by the whole organisation (managers and admins publish, sales only
when the organisation allows it). Built-in views are code, not rows: every organisation has them,
nobody can change or break them, each user may hide them.

Each user's preferences (tab order, hidden tabs, default view) live on their row
(`users.view_prefs`), which every request loads anyway: a list page spends no statement on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import or_, select, update

from crm_web.entities import ENTITIES, Entity
from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.models import Organization, Role, SavedView, User, utcnow
from crm_web.services import cache_versions
from crm_web.services.base import ActorService
from crm_web.services.cache import cache_get, cache_set

MAX_NAME = 80
MAX_QUERY = 4000
# The cached tabs are replaced by any write to saved views or users (the "views" domain of
# services/cache_versions.py); the timeout only bounds what a write outside the app leaves behind.
VIEWS_CACHE_TIMEOUT = 3600
MAX_VIEWS_PER_LIST = 100  # a user's own views of one list
# The parameters of a list's state a view keeps (besides the filter's `f`, `match` and `gN`); `cols`
# is the column chooser's, kept as it is.
STATE_KEYS = ("q", "scope", "sort", "per_page", "cols")
FILTER_KEYS = ("f", "match")


@dataclass(frozen=True)
class BuiltinView:
    key: str  # its id in URLs (`?view=my-open-deals`): never a UUID
    name: str
    query: str


@dataclass(frozen=True)
class ViewList:
    """A list that has views: its URL, the entity whose filter whitelist it uses, its built-ins."""

    key: str  # "contacts", ..., "board"
    label: str
    entity: str
    endpoint: str
    builtins: tuple[BuiltinView, ...] = ()
    prefix_keys: tuple[str, ...] = ()  # state kept before the rest (the board's pipeline, the quick view)
    # The list's own `view` parameter already names its built-ins (the activities' quick views).
    native_builtins: bool = False
    plain_label: str = ""  # the list without a view ("All contacts")

    @property
    def plain_name(self) -> str:
        return self.plain_label or f"All {self.label.lower()}"

    @property
    def entity_def(self) -> Entity:
        return ENTITIES[self.entity]

    def builtin(self, key: str) -> BuiltinView | None:
        return next((b for b in self.builtins if b.key == key), None)

    @property
    def state_keys(self) -> tuple[str, ...]:
        return (*self.prefix_keys, *STATE_KEYS)


def _b(key: str, name: str, *pairs: tuple[str, str]) -> BuiltinView:
    return BuiltinView(key, name, urlencode(pairs, safe=":,"))


LISTS: dict[str, ViewList] = {
    v.key: v
    for v in (
        ViewList(
            "contacts",
            "Contacts",
            "contact",
            "contacts.index",
            (
                _b("my-contacts", "My contacts", ("scope", "mine")),
                _b("customers", "Customers", ("f", "status.equals.customer")),
                _b("never-contacted", "No activity yet", ("f", "lastActivity.isEmpty")),
            ),
        ),
        ViewList(
            "companies",
            "Companies",
            "company",
            "companies.index",
            (
                _b("my-companies", "My companies", ("scope", "mine")),
                _b("new-companies", "Added this month", ("f", "created.inRange.thisMonth")),
            ),
        ),
        ViewList(
            "leads",
            "Leads",
            "lead",
            "leads.index",
            (
                _b("my-leads", "My leads", ("scope", "mine")),
                _b("new-leads", "New leads", ("f", "status.equals.new")),
                _b("qualified-leads", "Qualified", ("f", "status.equals.qualified")),
            ),
        ),
        ViewList(
            "deals",
            "Deals",
            "deal",
            "deals.index",
            (
                _b("my-open-deals", "My open deals", ("scope", "mine"), ("f", "status.equals.open")),
                _b(
                    "closing-this-month",
                    "Closing this month",
                    ("sort", "expected_close_date"),
                    ("f", "status.equals.open"),
                    ("f", "expectedClose.inRange.thisMonth"),
                ),
                _b("won-deals", "Won", ("f", "status.equals.won")),
            ),
        ),
        ViewList(
            "board",
            "Deals board",
            "deal",
            "board.index",
            (
                _b("my-open-deals", "My open deals", ("scope", "mine")),
                _b("closing-this-month", "Closing this month", ("f", "expectedClose.inRange.thisMonth")),
            ),
            prefix_keys=("pipeline",),
            plain_label="All deals",
        ),
        ViewList(
            "activities",
            "Activities",
            "activity",
            "activities.index",
            (
                _b("overdue", "Overdue"),
                _b("today", "Due today"),
                _b("upcoming", "Upcoming 7 days"),
                _b("all", "All"),
            ),
            prefix_keys=("quick",),
            native_builtins=True,
            plain_label="My open",
        ),
    )
}


def view_list(list_key: str) -> ViewList:
    found = LISTS.get(list_key)
    if found is None:
        raise NotFound("That list has no views.")
    return found


def parse_view_id(raw: str) -> uuid.UUID | None:
    """A saved view's id, or None when `raw` is no UUID (a built-in's key, or junk)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


# --- the state a view stores -------------------------------------------------------------------


def _condition_field(raw: str) -> str:
    head = raw.partition(".")[0]
    return head.partition(":")[2] if ":" in head else head


@dataclass
class CleanState:
    pairs: list[tuple[str, str]]
    dropped: list[str] = field(default_factory=list)  # the field keys of the dropped conditions


def clean_state(vlist: ViewList, query: str, fields: Mapping[str, Any] | None = None) -> CleanState:
    """A stored state as query pairs, without what no longer applies: parameters that are no list state,
    and conditions on a field the list's filter whitelist no longer has (a deleted custom field, a
    renamed key), whose keys are returned so the page can say so."""
    fields = vlist.entity_def.filter_fields() if fields is None else fields
    kept: list[tuple[str, str]] = []
    dropped: list[str] = []
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key == "f":
            name = _condition_field(value)
            if name not in fields:
                if name not in dropped:
                    dropped.append(name)
                continue
        elif key not in FILTER_KEYS and key not in vlist.state_keys and not _is_group_key(key):
            continue
        kept.append((key, value))
    return CleanState(kept, dropped)


def _is_group_key(key: str) -> bool:
    return len(key) > 1 and key[0] == "g" and key[1:].isdigit()


def state_query(vlist: ViewList, pairs: Sequence[tuple[str, str]]) -> str:
    """The query string a view stores: only the list's state parameters, in the order given."""
    kept = [
        (k, v)
        for k, v in pairs
        if v != "" and (k in FILTER_KEYS or k in vlist.state_keys or _is_group_key(k)) and k not in ("view", "state")
    ]
    query = urlencode(kept, safe=":,")
    if len(query) > MAX_QUERY:
        raise ValidationError("This list state is too long to save.", {"query": f"At most {MAX_QUERY} characters."})
    return query


# --- tabs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewRow:
    """A saved view as its tab needs it: plain data, cached per user and list (SavedViewService.tabs)."""

    id: uuid.UUID
    name: str
    query: str
    shared: bool
    owner_id: uuid.UUID
    owner_name: str


@dataclass
class Tab:
    """A tab above a list: a built-in or a saved view, with what its viewer may do with it."""

    key: str
    name: str
    query: str
    builtin: bool = False
    shared: bool = False
    mine: bool = False
    owner_name: str = ""
    hidden: bool = False
    default: bool = False
    can_edit: bool = False


@dataclass
class Opened:
    """The view a list was opened with: a tab, or a deleted view's name."""

    tab: Tab | None = None
    deleted_name: str | None = None
    deleted_id: uuid.UUID | None = None


def prefs_of(user: Any, list_key: str) -> dict[str, Any]:
    prefs = getattr(user, "view_prefs", None) or {}
    value = prefs.get(list_key) if isinstance(prefs, dict) else None
    return value if isinstance(value, dict) else {}


class SavedViewService(ActorService):
    """Views of the actor's organisation: the actor's own and the shared ones, never another's private one."""

    # --- reading ---------------------------------------------------------------------------

    def _visible(self) -> Any:
        return or_(SavedView.shared.is_(True), SavedView.owner_id == self.actor.user_id)

    def can_edit(self, view: SavedView | ViewRow) -> bool:
        """The owner changes their view; managers and admins also change the organisation's views."""
        return view.owner_id == self.actor.user_id or (view.shared and self.actor.has_role(Role.MANAGER))

    def _tab(self, view: SavedView | ViewRow, prefs: Mapping[str, Any], owner_name: str = "") -> Tab:
        key = str(view.id)
        return Tab(
            key=key,
            name=view.name,
            query=view.query,
            shared=view.shared,
            mine=view.owner_id == self.actor.user_id,
            owner_name=owner_name,
            hidden=key in (prefs.get("hidden") or []),
            default=prefs.get("default") == key,
            can_edit=self.can_edit(view),
        )

    def _builtin_tab(self, builtin: BuiltinView, prefs: Mapping[str, Any]) -> Tab:
        return Tab(
            key=builtin.key,
            name=builtin.name,
            query=builtin.query,
            builtin=True,
            hidden=builtin.key in (prefs.get("hidden") or []),
            default=prefs.get("default") == builtin.key,
        )

    def _view_rows(self, list_key: str) -> list[ViewRow]:
        rows = self.session.execute(
            select(SavedView, User.name)
            .join(User, User.id == SavedView.owner_id)
            .where(SavedView.org_id == self.actor.org_id, SavedView.list_key == list_key, self._visible())
            .order_by(SavedView.created_at, SavedView.id)
        ).all()
        return [ViewRow(v.id, v.name, v.query, v.shared, v.owner_id, name) for v, name in rows]

    def _tabs_key(self, list_key: str) -> str:
        return cache_versions.versioned_key(self.session, self.org_id, "views", "tabs", self.actor.user_id, list_key)

    def _ordered(self, list_key: str, rows: Sequence[ViewRow], prefs: Mapping[str, Any]) -> list[Tab]:
        tabs = [self._builtin_tab(b, prefs) for b in view_list(list_key).builtins]
        tabs += [self._tab(row, prefs, row.owner_name) for row in rows]
        order = {key: i for i, key in enumerate(prefs.get("order") or [])}
        return sorted(tabs, key=lambda t: order.get(t.key, len(order)))

    def tabs(self, list_key: str, prefs: Mapping[str, Any]) -> list[Tab]:
        """Every view of the list the actor may see, in their order (new ones last): none when the cache
        has them, else one statement (which fills it)."""
        key = self._tabs_key(list_key)
        rows = cache_get(key)
        if not isinstance(rows, list):
            rows = self._view_rows(list_key)
            cache_set(key, rows, timeout=VIEWS_CACHE_TIMEOUT)
        return self._ordered(list_key, rows, prefs)

    def open(self, list_key: str, key: str, prefs: Mapping[str, Any]) -> Opened:
        """The view `key` of the list: a built-in (no statement) or a saved view (one statement, which also
        tells a deleted view from one that never was, or is not the actor's to see: NotFound)."""
        vlist = view_list(list_key)
        builtin = vlist.builtin(key)
        if builtin is not None:
            return Opened(self._builtin_tab(builtin, prefs))
        view_id = parse_view_id(key)
        if view_id is None:
            raise NotFound(f"There is no view {key[:40]!r} of {vlist.label.lower()}.")
        view = self.session.scalar(
            SavedView.select_with_deleted().where(
                SavedView.id == view_id,
                SavedView.org_id == self.actor.org_id,
                SavedView.list_key == list_key,
                self._visible(),
            )
        )
        if view is None:
            raise NotFound("That view does not exist, or is private to someone else.")
        if view.deleted_at is not None:
            return Opened(deleted_name=view.name, deleted_id=view.id)
        return Opened(self._tab(view, prefs))

    def get_for_edit(self, view_id: uuid.UUID) -> SavedView:
        view = self.session.scalar(
            select(SavedView).where(SavedView.id == view_id, SavedView.org_id == self.actor.org_id, self._visible())
        )
        if view is None:
            raise NotFound("That view does not exist or was deleted.")
        if not self.can_edit(view):
            raise PermissionDenied("Only its owner or a manager can change this view.")
        return view

    # --- writing ---------------------------------------------------------------------------

    def may_publish(self) -> bool:
        """Managers and admins publish views to the organisation; sales when the organisation allows it."""
        if self.actor.has_role(Role.MANAGER):
            return True
        return bool(
            self.session.scalar(
                select(Organization.sales_can_publish_views).where(Organization.id == self.actor.org_id)
            )
        )

    def _clean_name(self, name: str | None) -> str:
        cleaned = " ".join((name or "").split())
        if not cleaned:
            raise ValidationError("The view needs a name.", {"name": "Give the view a name."})
        if len(cleaned) > MAX_NAME:
            raise ValidationError("The name is too long.", {"name": f"At most {MAX_NAME} characters."})
        return cleaned

    def _check_shared(self, shared: bool) -> None:
        if shared and not self.may_publish():
            raise PermissionDenied("Your organisation lets only managers and admins publish views to everyone.")

    def create(self, list_key: str, *, name: str, query: str, shared: bool = False) -> SavedView:
        """A new view of the list with the given state, the actor's own."""
        vlist = view_list(list_key)
        name = self._clean_name(name)
        query = state_query(vlist, parse_qsl(query))
        self._check_shared(shared)
        own = self.session.scalar(
            select(SavedView.id)
            .where(
                SavedView.org_id == self.actor.org_id,
                SavedView.owner_id == self.actor.user_id,
                SavedView.list_key == list_key,
            )
            .offset(MAX_VIEWS_PER_LIST - 1)
            .limit(1)
        )
        if own is not None:
            raise ValidationError(
                f"You have {MAX_VIEWS_PER_LIST} views of this list already.", {"name": "Delete one first."}
            )
        view = SavedView(
            org_id=self.actor.org_id,
            owner_id=self.actor.user_id,
            list_key=list_key,
            name=name,
            query=query,
            shared=shared,
        )
        self.session.add(view)
        self.session.commit()
        return view

    def update(
        self, view_id: uuid.UUID, *, name: str | None = None, query: str | None = None, shared: bool | None = None
    ) -> SavedView:
        """Save a new state, a new name or a new visibility (None: unchanged)."""
        view = self.get_for_edit(view_id)
        if name is not None:
            view.name = self._clean_name(name)
        if query is not None:
            view.query = state_query(view_list(view.list_key), parse_qsl(query))
        if shared is not None and shared != view.shared:
            self._check_shared(shared)
            if not shared and view.owner_id != self.actor.user_id:
                raise PermissionDenied("Only its owner can make this view private again.")
            view.shared = shared
        self.session.commit()
        return view

    def delete(self, view_id: uuid.UUID) -> SavedView:
        """To the trash (Undo restores it); its URL then says it was deleted."""
        view = self.get_for_edit(view_id)
        self.session.execute(
            update(SavedView)
            .where(SavedView.id == view.id, SavedView.org_id == self.actor.org_id)
            .values(deleted_at=utcnow(), deleted_by_id=self.actor.user_id)
        )
        self.session.commit()
        return view

    def restore(self, view_id: uuid.UUID) -> SavedView:
        """The restore policy of every deleted record: whoever deleted it, or an admin."""
        view = self.session.scalar(
            SavedView.select_deleted().where(
                SavedView.id == view_id, SavedView.org_id == self.actor.org_id, self._visible()
            )
        )
        if view is None:
            raise NotFound("That view is not in the trash.")
        if view.deleted_by_id != self.actor.user_id and not self.actor.has_role(Role.ADMIN):
            raise PermissionDenied("Only whoever deleted this view, or an admin, can restore it.")
        view.deleted_at = None
        view.deleted_by_id = None
        self.session.commit()
        return view

    # --- the actor's preferences ---------------------------------------------------------------

    def _set_prefs(self, list_key: str, **changes: Any) -> dict[str, Any]:
        view_list(list_key)
        user = self.session.get(User, self.actor.user_id)
        if user is None:
            raise NotFound("Your account no longer exists.")
        prefs = dict(user.view_prefs or {})
        mine = dict(prefs.get(list_key) or {})
        mine.update(changes)
        prefs[list_key] = {k: v for k, v in mine.items() if v not in (None, [], "")}
        user.view_prefs = prefs  # a new dict: the JSON column sees the change
        self.session.commit()
        return prefs[list_key]

    def _known(self, list_key: str, keys: Sequence[str]) -> list[str]:
        """The keys among `keys` naming a tab the actor sees (unknown or foreign ones are ignored)."""
        visible = {t.key for t in self.tabs(list_key, {})}
        seen: list[str] = []
        for key in keys:
            if key in visible and key not in seen:
                seen.append(key)
        return seen

    def reorder(self, list_key: str, keys: Sequence[str]) -> dict[str, Any]:
        """The actor's order of the list's tabs (tabs left out follow, new ones last)."""
        return self._set_prefs(list_key, order=self._known(list_key, keys[:500]))

    def set_default(self, list_key: str, key: str | None) -> dict[str, Any]:
        """The view the list opens with from the navigation (None: the plain list)."""
        if key is not None and not self._known(list_key, [key]):
            raise NotFound("That view does not exist or was deleted.")
        return self._set_prefs(list_key, default=key)

    def set_hidden(self, list_key: str, key: str, hidden: bool, prefs: Mapping[str, Any]) -> dict[str, Any]:
        """Hide a tab (a built-in or someone else's shared view) for the actor, or show it again."""
        if not self._known(list_key, [key]):
            raise NotFound("That view does not exist or was deleted.")
        current = [k for k in (prefs.get("hidden") or []) if k != key]
        return self._set_prefs(list_key, hidden=[*current, key] if hidden else current)

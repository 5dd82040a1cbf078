"""Every template filter and global, registered in this one place (rendering.init_app calls it)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask, g, url_for

from crm_web import clock
from crm_web.charts import nice_scale
from crm_web.formatting import choice_label, money, month_label, short_date, short_datetime, time_ago
from crm_web.models import Role
from crm_web.permissions import can
from crm_web.services.rotting import days_in_stage
from crm_web.services.search import highlight


def email_pieces(value: str) -> list[str]:
    """An email cut before its @ and dots: the template joins the pieces (each escaped as usual) with
    <wbr>, so a long address wraps there rather than in the middle of a word."""
    return re.split(r"(?=[@.])", value)


FILTERS = {
    "email_pieces": email_pieces,
    "money": money,
    "label": choice_label,
    "short_date": short_date,
    "short_datetime": short_datetime,
    "time_ago": time_ago,
    "month_label": month_label,
    "highlight": highlight,
    "days_in_stage": days_in_stage,
}


def org_currency() -> str:
    """The signed-in user's organisation's currency: what converted sums are stated in (macros
    imported without context cannot see current_user)."""
    from flask_login import current_user

    org = getattr(current_user, "org", None)
    return getattr(org, "default_currency", None) or "USD"


def can_do(action: str, record: Any = None) -> bool:
    """permissions.can for the signed-in user: whether a page may offer `action` on `record`."""
    from flask_login import current_user

    # The user behind the proxy, looked up once: can() reads several of its attributes, and a page
    # asks once per card or row.
    user = current_user._get_current_object()
    return can(user, action, record) if getattr(user, "is_authenticated", False) else False


GLOBALS = {
    "org_currency": org_currency,
    "can": can_do,
    "Role": Role,
    "nice_scale": nice_scale,
    # Row and timeline macros (imported without context) mark overdue items against this clock.
    "utcnow": clock.now,
}


def typo_tolerant() -> bool:
    """Whether the search corrects typos: PostgreSQL only (SQLite finds the exact words), which the
    search box and its empty result say."""
    from crm_web.extensions import db

    return bool(db.engine.dialect.name == "postgresql")


def may_publish_views() -> bool:
    """Whether the signed-in user may publish saved views to their organisation (the save form asks;
    services/saved_views decides). No statement: the organisation is loaded with the user."""
    from flask_login import current_user

    from crm_web.models import Role

    if not current_user.is_authenticated:
        return False
    return bool(current_user.has_role(Role.MANAGER) or current_user.org.sales_can_publish_views)


def view_tab_bar(list_key: str) -> dict[str, Any]:
    """What a list page shows of its saved-view tabs: the list's views declaration and the whole tab
    bar (`tabs`, `has_default`). No statement when the cache has the user's tabs of the list, else one
    (which fills it): the page arrives whole, without a request of its own for the bar."""
    from flask_login import current_user

    from crm_web.services.base import Actor
    from crm_web.services.saved_views import SavedViewService, prefs_of, view_list

    prefs = prefs_of(current_user, list_key)
    return {
        "vlist": view_list(list_key),
        "tabs": SavedViewService(Actor.of(current_user)).tabs(list_key, prefs),
        "has_default": bool(prefs.get("default")),
    }


def custom_fields_of(entity_name: str) -> list[Any]:
    """The signed-in user's organisation's live custom fields of an entity (its row is loaded with the
    user: no statement)."""
    from flask_login import current_user

    from crm_web.custom_fields import CUSTOM_ENTITIES, live_fields

    if entity_name not in CUSTOM_ENTITIES or not getattr(current_user, "is_authenticated", False):
        return []
    # Parsed once per request and schema (the board asks once per card, through board_fields): a
    # change in the request assigns the organisation a new schema object, which parses afresh.
    schema = current_user.org.custom_fields
    memo = g.get("custom_fields_of")
    if memo is None or memo[0] is not schema:
        memo = g.custom_fields_of = (schema, {})
    parsed: dict[str, list[Any]] = memo[1]
    if entity_name not in parsed:
        parsed[entity_name] = live_fields(schema, entity_name)
    return parsed[entity_name]


def custom_users(fields: Any, record: Any = None) -> list[tuple[Any, str]]:
    """The organisation's active users, for fields of type user: one statement, only when there is one."""
    from flask_login import current_user

    if not any(cf.type == "user" for cf in fields):
        return []
    from crm_web.services.base import Actor, BaseService

    return BaseService(Actor.of(current_user)).owner_choices()


def custom_display(cf: Any, value: Any, users: Any = ()) -> str:
    from crm_web.custom_fields import display

    return display(cf, value, {str(user_id): name for user_id, name in users or ()})


def custom_colour(cf: Any, value: Any) -> str:
    from crm_web.custom_fields import colour_of

    return colour_of(cf, value)


def board_fields() -> list[Any]:
    """The deal custom fields this user shows on the board's cards (their pick: users.list_columns["board"])."""
    from flask_login import current_user

    if not getattr(current_user, "is_authenticated", False):
        return []
    picked = (current_user.list_columns or {}).get("board") or []
    return [cf for cf in custom_fields_of("deal") if cf.key in picked]


def _columns_of(list_name: str) -> Any:
    from crm_web.views.columns import columns_of

    return columns_of(list_name)


def _entity_of(name: str) -> Any:
    from crm_web.entities import entity

    return entity(name)


_ID_SLOT = uuid.UUID(int=0)


def record_url(endpoint: str, **record_id: Any) -> str:
    """url_for(endpoint, <its one argument>=<a record's UUID>), the route built once per request and
    endpoint and each id put in its place: a list's rows, the board's cards and a timeline's items
    build hundreds of these, and routing each cost more than its row's other work. Any other value
    goes through url_for."""
    ((name, value),) = record_id.items()
    if not isinstance(value, uuid.UUID):
        return url_for(endpoint, **record_id)
    built: dict[tuple[str, str], list[str]] = g.setdefault("record_urls", {})
    parts = built.get((endpoint, name))
    if parts is None:
        slot: dict[str, Any] = {name: _ID_SLOT}
        parts = built[(endpoint, name)] = url_for(endpoint, **slot).split(str(_ID_SLOT))
    return f"{parts[0]}{value}{parts[1]}"


def register(app: Flask) -> None:
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals.update(GLOBALS)
    app.jinja_env.globals["typo_tolerant"] = typo_tolerant
    app.jinja_env.globals["may_publish_views"] = may_publish_views
    app.jinja_env.globals["view_tab_bar"] = view_tab_bar
    app.jinja_env.globals.update(
        custom_fields_of=custom_fields_of,
        custom_users=custom_users,
        custom_display=custom_display,
        custom_colour=custom_colour,
        entity_of=_entity_of,
        columns_of=_columns_of,
        board_fields=board_fields,
        record_url=record_url,
    )

"""The column chooser's two requests, for every list (crm_web/columns.py): the columns in force for
a list state, and the POST that stores a user's choice."""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from crm_web import columns
from crm_web.errors import BadRequest
from crm_web.rendering import see_other
from crm_web.services.base import Actor
from crm_web.services.users import UserService
from crm_web.views.listing import ListQuery


def visible_columns(list_name: str, query: ListQuery) -> list[columns.Column]:
    """The columns in force; a stored choice is written into the list state, so its links (pages, sort,
    export) carry it, and the defaults leave the URL plain."""
    schema = current_user.org.custom_fields
    shown = columns.visible(list_name, schema, query.cols, current_user.list_columns)
    query.cols = None if columns.is_default(list_name, schema, shown) else ",".join(c.key for c in shown)
    return shown


def save_columns(list_name: str, query: ListQuery, list_url: str) -> ResponseReturnValue:
    """The user's columns for this list (in the posted order), then the list showing them; `reset` goes
    back to the defaults."""
    keys = [] if request.form.get("reset") else columns.parse_keys(",".join(request.form.getlist("col")[:60]))
    known = {c.key for c in columns.available(list_name, current_user.org.custom_fields)}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise BadRequest(f"Unknown column {unknown[0][:40]!r}.")
    UserService(Actor.of(current_user)).set_list_columns(list_name, keys)
    query.cols = ",".join(keys) or None
    return see_other(query.url(list_url))


def columns_of(list_name: str) -> list[columns.Column]:
    """A template global: the user's columns of a list without a list state (a row re-rendered alone)."""
    return columns.visible(list_name, current_user.org.custom_fields, None, current_user.list_columns)

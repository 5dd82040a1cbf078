"""Global search: the header box's dropdown of results grouped by type."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Blueprint, url_for

from crm_web.entities import entity
from crm_web.errors import NotFound
from crm_web.params import get_text_param
from crm_web.rendering import render_page
from crm_web.services.pickers import KINDS, PickerService
from crm_web.services.search import SearchService
from crm_web.views.generic import acting

bp = Blueprint("search", __name__)

PICKER = "components/picker_options.html"
FIELD_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def hit_url(kind: str, hit_id: uuid.UUID) -> str:
    """Where a hit links to: the record's detail page (the entity registry names it)."""
    found = entity(kind)
    assert found.detail_endpoint is not None  # only entities with a detail page are searched
    values: dict[str, Any] = {found.id_arg: hit_id}
    return url_for(found.detail_endpoint, **values)


@bp.get("/search")
def index():
    q = get_text_param("q", max_length=200)
    groups = acting(SearchService).search(q)
    return render_page("search/index.html", block="search_results", q=q, groups=groups, hit_url=hit_url)


@bp.get("/search/pick/<kind>")
def pick(kind: str):
    """A record picker's matches (components/picker.html) as the user types: at most 20 names."""
    if kind not in KINDS:
        raise NotFound(f"Nothing to pick called {kind!r}.")
    q = get_text_param("q", max_length=200)
    field = get_text_param("field", max_length=60)
    if not FIELD_ID.fullmatch(field):
        field = "picker"
    picks = acting(PickerService).matches(kind, q)
    # Offer to create a company whose name nobody has yet (the contact and deal forms).
    typed = " ".join(q.split())
    create = bool(typed) and kind == "company" and not any(p.label.casefold() == typed.casefold() for p in picks)
    return render_page(PICKER, block="picker_options", picks=picks, field=field, q=typed, create=create, kind=kind)

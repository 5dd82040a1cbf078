"""Global search: the header box's dropdown of results grouped by type."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, url_for
from flask_login import current_user

from crm_web.entities import entity
from crm_web.params import get_text_param
from crm_web.rendering import render_page
from crm_web.services.base import Actor
from crm_web.services.search import SearchService

bp = Blueprint("search", __name__)


def hit_url(kind: str, hit_id: uuid.UUID) -> str:
    """Where a hit links to: the record's detail page (the entity registry names it)."""
    found = entity(kind)
    assert found.detail_endpoint is not None  # only entities with a detail page are searched
    values: dict[str, Any] = {found.id_arg: hit_id}
    return url_for(found.detail_endpoint, **values)


@bp.get("/search")
def index():
    q = get_text_param("q", max_length=200)
    groups = SearchService(Actor.of(current_user)).search(q)
    return render_page("search/index.html", block="search_results", q=q, groups=groups, hit_url=hit_url)

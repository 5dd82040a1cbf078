"""Global search: the header box's dropdown of results grouped by type."""

from __future__ import annotations

from flask import Blueprint, url_for
from flask_login import current_user

from crm_web.params import get_text_param
from crm_web.rendering import render_page
from crm_web.services.base import Actor
from crm_web.services.search import SearchService, highlight

bp = Blueprint("search", __name__)
bp.add_app_template_filter(highlight, "highlight")

# Where a hit links to: the record's detail page.
DETAIL_ENDPOINTS = {
    "contact": ("contacts.detail", "contact_id"),
    "company": ("companies.detail", "company_id"),
    "lead": ("leads.detail", "lead_id"),
    "deal": ("deals.detail", "deal_id"),
}


def hit_url(kind: str, hit_id) -> str:
    endpoint, arg = DETAIL_ENDPOINTS[kind]
    return url_for(endpoint, **{arg: hit_id})


@bp.get("/search")
def index():
    q = get_text_param("q", max_length=200)
    groups = SearchService(Actor.of(current_user)).search(q)
    return render_page("search/index.html", block="search_results", q=q, groups=groups, hit_url=hit_url)

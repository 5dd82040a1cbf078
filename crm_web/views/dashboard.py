"""The dashboard: KPI cards and SVG charts for me, a chosen owner or the whole team.

`/` is where a sign-in lands: the dashboard for managers and admins, My day for sales staff (their
to-do list matters more to them than the team's charts; a `/?owner=` link still opens the dashboard);
`/dashboard` is the dashboard for everyone.

Each panel is a named block of dashboard/index.html with its own URL (/dashboard/<panel>),
so it can lazy-load or refresh alone.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask_login import current_user

from crm_web.htmx import wants_fragment
from crm_web.models import Role
from crm_web.params import get_text_param, parse_uuid
from crm_web.rendering import render_page
from crm_web.services.base import Actor
from crm_web.services.organisations import OrganisationService
from crm_web.services.stats.dashboard import PANELS, DashboardService

bp = Blueprint("dashboard", __name__)


TEMPLATE = "dashboard/index.html"


def _owner_param() -> str | None:
    """ "me", "all" or a user id (a malformed id is a 400)."""
    raw = get_text_param("owner", max_length=40)
    if raw in ("me", "all", ""):
        return raw or None
    return str(parse_uuid(raw, "owner"))


def _context(panel: str | None = None) -> dict[str, Any]:
    """The page's context: every panel, or just one for a panel refresh."""
    actor = Actor.of(current_user)
    service = DashboardService(actor)
    scope = service.resolve_scope(_owner_param())
    data = service.dashboard(scope) if panel is None else {panel: service.panel(panel, scope)}
    checklist = None
    if panel is None and _all_zero(data):
        # Only then (one statement): a new organisation's first steps instead of empty charts.
        checklist = OrganisationService(actor).getting_started(current_user.org)
    currency = current_user.org.default_currency  # every sum is converted into it (services/currencies.py)
    return {"scope": scope, "title": "Dashboard", "checklist": checklist, "currency": currency, **data}


def _all_zero(data: dict[str, Any]) -> bool:
    kpis = data["kpis"]
    return not (kpis["open_count"] or kpis["won_count"] or kpis["lost_count"] or data["activity_charts"]["total"])


@bp.get("/")
def index():
    if not current_user.has_role(Role.MANAGER) and "owner" not in request.args:  # `/?owner=`: a dashboard link
        from crm_web.views.my_day import my_day_page

        return my_day_page()
    return overview()


@bp.get("/dashboard")
def overview():
    return render_page(TEMPLATE, block="dashboard_panels", **_context())


@bp.get("/dashboard/<panel>")
def panel(panel: str):
    if panel not in PANELS:
        abort(404)
    if not wants_fragment():
        return redirect(url_for("dashboard.overview", owner=_owner_param()), code=303)
    return render_page(TEMPLATE, block=panel, **_context(panel))

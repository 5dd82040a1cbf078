"""The bell in the header, the notifications list, mark read, and each user's notification settings.

The bell polls (static/js/live.js) like a live page: its answer is 204 without any SQL statement
while nothing it depends on changed (the user's notifications, the organisation's activities) and
no reminder has fallen due since it last looked (services/live.py keeps that in the cache); else
reminders are derived (services/notifications.py) and the count is read: two statements.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, flash, request, session, url_for
from flask_login import current_user

from crm_web.auth import parse_user_id, public
from crm_web.errors import ValidationError
from crm_web.extensions import db
from crm_web.models import NOTIFICATION_KINDS
from crm_web.params import get_int_param, parse_uuid
from crm_web.rendering import render_page, see_other
from crm_web.services import live
from crm_web.services.cache import breaker, cache_delete, cache_get_many, cache_set
from crm_web.services.notifications import NotificationService, muted
from crm_web.views.generic import acting
from crm_web.views.live import SESSION_MARK, background

bp = Blueprint("notifications", __name__)

# Where a notification about each kind of record leads.
RECORD_LINKS = {
    "deal": ("deals.detail", "deal_id"),
    "contact": ("contacts.detail", "contact_id"),
    "lead": ("leads.detail", "lead_id"),
    "company": ("companies.detail", "company_id"),
    "activity": ("activities.edit", "activity_id"),
}


def record_url(entity_type: str, entity_id: uuid.UUID) -> str:
    endpoint, argument = RECORD_LINKS.get(entity_type, ("dashboard.index", ""))
    values: dict[str, Any] = {argument: entity_id} if argument else {}
    return url_for(endpoint, **values)


def _bell_state(org: str, user: str) -> tuple[str, dict[str, Any] | None]:
    """What the bell depends on, as one stamp (one cache round trip), and the bell's own entry."""
    keys = [
        live.bell_key(org, user),
        *live.watched_keys(org, "activities"),
        live.record_key(org, "notifications", user),
    ]
    found = cache_get_many(*keys)
    if breaker.is_open():
        return live.OFFLINE, None
    basis = ".".join(value["v"] if isinstance(value, dict) else "-" for value in found[1:])
    entry = found[0] if isinstance(found[0], dict) else None
    return basis, entry


@bp.get("/notifications/bell")
@public
@background
def bell():
    held = request.args.get("s", "")
    mark = session.get(SESSION_MARK)
    parsed = parse_user_id(session.get("_user_id") or "")
    if parsed and isinstance(mark, list) and len(mark) == 2 and mark[0] == session.get("_user_id"):
        basis, entry = _bell_state(str(mark[1]), str(parsed[0]))
        # With the cache away the bell is computed every time (two statements): it keeps counting.
        if held and held == basis and entry and entry.get("basis") == basis and time.time() < entry.get("next", 0):
            return Response(status=204)
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    org, user = str(current_user.org_id), str(current_user.id)
    if mark != [session.get("_user_id"), org]:
        session[SESSION_MARK] = [session.get("_user_id"), org]
    service = acting(NotificationService)
    due = service.remind(current_user)
    count = service.unread_count(current_user)
    basis, _entry = _bell_state(org, user)  # after the reminders' commit
    if basis != live.OFFLINE:
        cache_set(live.bell_key(org, user), {"basis": basis, "next": due.timestamp()}, timeout=live.STAMP_SECONDS)
    return render_page("components/bell.html", block="bell", count=count, stamp=basis, next_due=int(due.timestamp()))


@bp.get("/notifications")
def index():
    service = acting(NotificationService)
    service.remind(current_user)
    found = service.page(current_user, get_int_param("page", 1, min_value=1, max_value=100_000))
    return render_page(
        "notifications/index.html",
        found=found,
        record_url=record_url,
        kinds=NOTIFICATION_KINDS,
        title="Notifications",
    )


def _posted_id() -> uuid.UUID | None:
    return parse_uuid(request.form.get("id"))  # not an id: 400


@bp.post("/notifications/open")
def open_one():
    """Mark the posted notification read and go to its record; one that is not the user's (or no longer
    there) leads back to the list."""
    service = acting(NotificationService)
    notification_id = _posted_id()
    notification = (
        service.session.scalar(service._mine().where(service.model.id == notification_id)) if notification_id else None
    )
    if notification is None:
        flash("That notification is not there any more.")
        return see_other(url_for("notifications.index"))
    target = record_url(notification.entity_type, notification.entity_id)
    service.mark_read(notification.id)
    return see_other(target)


@bp.post("/notifications/read")
def mark_read():
    notification_id = _posted_id()
    if notification_id is not None:
        acting(NotificationService).mark_read(notification_id)  # only the user's own: scoped in the UPDATE
    return see_other(url_for("notifications.index"))


@bp.post("/notifications/read-all")
def mark_all_read():
    count = acting(NotificationService).mark_all_read()
    flash(f"{count} notification{'s' if count != 1 else ''} marked read." if count else "Nothing was unread.")
    return see_other(url_for("notifications.index"))


@bp.post("/account/notifications")
def preferences():
    """The kinds this user gets and how long before an activity is due they are reminded."""
    raw = request.form.get("reminder_minutes", "").strip()
    if not raw.isdigit() or not 0 <= int(raw) <= 1440:
        raise ValidationError(
            "Some values are out of range", {"reminder_minutes": "Enter whole minutes from 0 to 1440."}
        )
    chosen = set(request.form.getlist("kinds"))
    user = current_user._get_current_object()
    user.reminder_minutes = int(raw)
    user.muted_notifications = ",".join(kind for kind in NOTIFICATION_KINDS if kind not in chosen)
    db.session.commit()
    cache_delete(live.bell_key(str(user.org_id), str(user.id)))
    flash("Your notification settings are saved.")
    return see_other(url_for("account.index"))


def muted_kinds() -> set[str]:
    return muted(current_user)

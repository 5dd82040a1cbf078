"""Login: the user loader, revocable sessions with a maximum age and an idle timeout, and what an
anonymous request gets.

A session (and a "keep me signed in" cookie) carries the user's id and session version
(`User.get_id`, Flask-Login's alternative-token pattern). The loader refuses a version that is no
longer the user's, so bumping `users.session_version` (sign-out everywhere, a password change or
reset, deactivation, a role change: services/users.py) ends every session and remember cookie of
that user at its next request. The session also records when it started and when it was last
used; past SESSION_MAX_AGE_HOURS or SESSION_IDLE_MINUTES it is over (a valid remember cookie
starts a new one, which is what "keep me signed in" means).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, flash, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user, login_user, user_loaded_from_cookie, user_logged_in
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response as BaseResponse

from crm_web.database import CURRENT_ORG_INFO_KEY, tenant_settings
from crm_web.models import User

SESSION_STARTED = "_crm_started"
SESSION_SEEN = "_crm_seen"
# The last-used time is rewritten at most this often (each rewrite is a new session cookie).
SEEN_RESOLUTION_SECONDS = 60

# Why a request lost its session (g.session_ended), and what the login page then says.
ENDED_MESSAGES = {
    "deactivated": "Your account has been deactivated. Ask an administrator of your organisation for access.",
    "revoked": "You were signed out: you signed out in another browser, your password or role changed, or "
    "your sessions were ended. Please sign in again.",
    "idle": "You were signed out after {idle} minutes without activity. Please sign in again.",
    "expired": "Your session is more than {hours} hours old. Please sign in again.",
}
# Where a user who must choose a new password may still go.
WHILE_CHANGING_PASSWORD = {"account.index", "account.change_password", "auth.logout", "static"}


def parse_user_id(user_id: str) -> tuple[uuid.UUID, int] | None:
    """`<uuid>.<session version>` (User.get_id); anything else (an old or forged value) is None."""
    key, _, version = user_id.partition(".")
    try:
        return uuid.UUID(key), int(version)
    except ValueError:
        return None


def init_login(login_manager: LoginManager) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        from crm_web.extensions import db

        parsed = parse_user_id(user_id)
        if parsed is None:
            return None
        key, version = parsed
        # One statement per request: the user with their organisation. On PostgreSQL the same
        # statement sets the transaction's org for the row-level security policies (the second
        # tenant wall, migrations/versions/0002_row_level_security.py; `users` has no policy itself)
        # and the request's timeouts (crm_web/database.py).
        query = select(User).options(joinedload(User.org)).where(User.id == key)
        postgresql = db.session.get_bind().dialect.name == "postgresql"
        if postgresql:
            query = query.add_columns(*tenant_settings(User.org_id))
        row = db.session.execute(query).first()
        user = row[0] if row is not None else None
        if user is None:
            return None
        if not user.active or user.session_version != version:
            g.session_ended = "deactivated" if not user.active else "revoked"
            return None
        if postgresql:
            # Later transactions of this request (after a service commit) re-apply it: database.py.
            db.session.info[CURRENT_ORG_INFO_KEY] = str(user.org_id)
        return user

    @login_manager.unauthorized_handler
    def unauthorized() -> BaseResponse:
        login_url = url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
        if request.path.startswith("/internal/"):
            return Response('{"error": "authentication required"}', 401, mimetype="application/json")
        _forget_ended_session()
        if request.headers.get("HX-Request") == "true":
            # htmx cannot follow a 302 to a full page; tell it to navigate.
            response = Response("Your session has expired.", 401)
            response.headers["HX-Redirect"] = login_url
            return response
        return redirect(login_url)


@user_logged_in.connect
@user_loaded_from_cookie.connect
def _start_clock(sender, user, **extra) -> None:
    """Every new session (a sign-in, or a remember cookie's) starts its own clock."""
    session[SESSION_STARTED] = session[SESSION_SEEN] = int(time.time())


def _forget_ended_session() -> None:
    """A session that was refused (revoked, deactivated, too old) is dropped with its remember cookie,
    and the login page says why."""
    reason = g.pop("session_ended", None)
    if reason is None:
        return
    config = current_app.config
    session.clear()
    session["_remember"] = "clear"  # Flask-Login deletes the remember cookie after the request
    message = ENDED_MESSAGES[reason].format(idle=config["SESSION_IDLE_MINUTES"], hours=config["SESSION_MAX_AGE_HOURS"])
    flash(message, "info")


def start_session(user: User, *, remember: bool = False) -> None:
    """A fresh session for `user` (nothing of the previous one is kept: no fixation)."""
    session.clear()
    login_user(user, remember=remember)


def renew_session(user: User) -> None:
    """Keep this browser signed in after its own session version was bumped (a password change):
    the session, and the remember cookie if it has one, carry the new version; its clock goes on."""
    started = session.get(SESSION_STARTED)
    remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
    login_user(user, remember=remembered)
    if started is not None:
        session[SESSION_STARTED] = started


def _check_session_age() -> None:
    """End a session past its maximum age or idle timeout, before the user is loaded."""
    if "_user_id" not in session:
        return
    now = int(time.time())
    started = session.get(SESSION_STARTED)
    seen = session.get(SESSION_SEEN)
    if started is None or seen is None:  # a session from before these settings: its clock starts now
        session[SESSION_STARTED] = started = now if started is None else started
        session[SESSION_SEEN] = seen = now
    reason = session_over(started, seen, now, current_app.config)
    if reason is not None:
        # Only the session: a valid remember cookie signs the user in again (a new session).
        for key in ("_user_id", "_fresh", "_id", SESSION_STARTED, SESSION_SEEN):
            session.pop(key, None)
        g.session_ended = reason
    elif now - seen >= SEEN_RESOLUTION_SECONDS and not _is_background():
        session[SESSION_SEEN] = now


def session_over(started: int, seen: int, now: int, config: Mapping[str, Any]) -> str | None:
    """Why a session that started and was last used at these times is over ("expired", "idle"), or None."""
    if now - started > config["SESSION_MAX_AGE_HOURS"] * 3600:
        return "expired"
    if now - seen > config["SESSION_IDLE_MINUTES"] * 60:
        return "idle"
    return None


def _is_background() -> bool:
    """A request a page makes by itself (a live page's poll): not the user's activity, so an open board
    does not keep an idle session alive."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "is_background", False)


def public(view):
    """Mark a view as reachable without signing in (everything else requires a login)."""
    view.is_public = True
    return view


def require_login_everywhere(app) -> None:
    @app.before_request
    def _require_login():
        if request.endpoint is None or request.endpoint == "static":
            return None
        _check_session_age()
        view = current_app.view_functions.get(request.endpoint)
        if getattr(view, "is_public", False):
            return None
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        if current_user.must_change_password and request.endpoint not in WHILE_CHANGING_PASSWORD:
            return _send_to_password_change()
        g.pop("session_ended", None)  # the remember cookie signed the user in again
        return None


def _send_to_password_change() -> BaseResponse:
    url = url_for("account.index")
    if request.headers.get("HX-Request") == "true":
        response = Response(status=204)
        response.headers["HX-Redirect"] = url
        return response
    flash("Choose your own password before you go on: the one you were given was temporary.", "info")
    return redirect(url, 303)

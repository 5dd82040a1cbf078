"""Login: the user loader, and what an anonymous request gets."""

from __future__ import annotations

import uuid

from flask import Response, redirect, request, url_for
from flask_login import LoginManager
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from crm_web.database import CURRENT_ORG_INFO_KEY, tenant_settings
from crm_web.models import User


def init_login(login_manager: LoginManager) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        from crm_web.extensions import db

        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return None
        # One statement per request: the user with their organisation. On PostgreSQL the same
        # statement sets the transaction's org for the row-level security policies (the second
        # tenant wall, migrations/versions/0002_row_level_security.py; `users` has no policy itself)
        # and the request's timeouts (crm_web/database.py).
        query = select(User).options(joinedload(User.org)).where(User.id == key)
        if db.session.get_bind().dialect.name != "postgresql":
            return db.session.scalar(query)
        query = query.add_columns(*tenant_settings(User.org_id))
        row = db.session.execute(query).first()
        if row is None:
            return None
        user = row[0]
        # Later transactions of this request (after a service commit) re-apply it: database.py.
        db.session.info[CURRENT_ORG_INFO_KEY] = str(user.org_id)
        return user

    @login_manager.unauthorized_handler
    def unauthorized() -> Response:
        login_url = url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
        if request.path.startswith("/internal/"):
            return Response('{"error": "authentication required"}', 401, mimetype="application/json")
        if request.headers.get("HX-Request") == "true":
            # htmx cannot follow a 302 to a full page; tell it to navigate.
            response = Response("Your session has expired.", 401)
            response.headers["HX-Redirect"] = login_url
            return response
        return redirect(login_url)


def public(view):
    """Mark a view as reachable without signing in (everything else requires a login)."""
    view.is_public = True
    return view


def require_login_everywhere(app) -> None:
    from flask import current_app
    from flask_login import current_user

    @app.before_request
    def _require_login():
        if request.endpoint is None or request.endpoint == "static":
            return None
        view = current_app.view_functions.get(request.endpoint)
        if getattr(view, "is_public", False) or current_user.is_authenticated:
            return None
        return current_app.login_manager.unauthorized()

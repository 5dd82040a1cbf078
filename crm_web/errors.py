"""Domain errors, and the one place that maps every error to a page, a toast or JSON."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class CRMException(Exception):
    """Base of every error a service raises on purpose; its message is safe to show."""

    status_code = 400
    title = "Request failed"

    def __init__(self, message: str | None = None):
        super().__init__(message or self.title)
        self.message = message or self.title


class NotFound(CRMException):
    status_code = 404
    title = "Not found"


class PermissionDenied(CRMException):
    status_code = 403
    title = "You do not have permission to do that"


class Conflict(CRMException):
    status_code = 409
    title = "The record changed meanwhile"

    def __init__(self, message: str | None = None, *, current_version: int | None = None):
        super().__init__(message)
        # The record's version now, when known: an edit form re-rendered with it saves over the
        # other change on purpose ("Save anyway").
        self.current_version = current_version


class ValidationError(CRMException):
    status_code = 422
    title = "Please correct the highlighted fields"

    def __init__(self, message: str | None = None, field_errors: dict[str, str] | None = None):
        super().__init__(message)
        self.field_errors = dict(field_errors or {})


class BadRequest(CRMException):
    """Malformed input in a URL or query string (not a form)."""

    status_code = 400
    title = "Bad request"


def _wants_json() -> bool:
    return request.path.startswith("/internal/") or request.accept_mimetypes.best == "application/json"


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


UNAVAILABLE_MESSAGE = "The service is briefly unavailable. Please try again in a few seconds."


def error_response(status: int, message: str, title: str | None = None) -> Response:
    """Render an error for whoever asked: JSON, an htmx toast, or a full page."""
    if _wants_json():
        response = jsonify({"error": message})
    elif _is_htmx():
        response = Response(render_template("components/toast.html", kind="error", message=message))
        # htmx swaps this into the toast area instead of the request's own target.
        response.headers["HX-Retarget"] = "#toasts"
        response.headers["HX-Reswap"] = "beforeend"
    else:
        response = Response(
            render_template("errors/error.html", status=status, title=title or message, message=message)
        )
    response.status_code = status
    return response


def _rollback_quietly() -> None:
    from crm_web.extensions import db

    try:
        db.session.rollback()
    except Exception:  # the connection may be gone already; the pool replaces it
        logger.debug("Rollback after a database error failed", exc_info=True)


def unavailable_response(retry_after: int | None = None) -> Response:
    """503 with Retry-After: the database is restarting, unreachable, or a timeout fired."""
    # Render the page signed out: the layout reads current_user, whose row the rollback expired (or
    # never loaded), and reading it again would ask the unavailable database from the error handler.
    from crm_web.extensions import login_manager

    g._login_user = login_manager.anonymous_user()
    response = error_response(503, UNAVAILABLE_MESSAGE, "Temporarily unavailable")
    response.headers["Retry-After"] = str(retry_after or current_app.config.get("RETRY_AFTER_SECONDS", 5))
    return response


def register_error_handlers(app: Flask) -> None:
    from crm_web.database import REPLAY_HEADER, is_unavailable, may_replay
    from crm_web.extensions import db

    @app.errorhandler(CRMException)
    def handle_domain_error(error: CRMException):
        db.session.rollback()
        # A field error that repeats the message is not said twice.
        fields = error.field_errors.values() if isinstance(error, ValidationError) else ()
        details = [text for text in fields if text != error.message]
        message = error.message + ": " + "; ".join(details) if details else error.message
        return error_response(error.status_code, message, error.title)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error: CSRFError):
        return error_response(400, "This page has expired. Reload it and try again.", "Page expired")

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        if error.response is not None:  # an answer made for this error (the sign-in limit's page)
            return error.response
        return error_response(error.code, error.description or error.name, error.name)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        _rollback_quietly()
        if is_unavailable(error) and may_replay(error, request.method, request.environ):
            # A read cut in flight before any commit: run once more (database.ReplayCutReads).
            logger.info("Database connection cut on %s %s; running it once more", request.method, request.path)
            response = unavailable_response()
            response.headers[REPLAY_HEADER] = "1"
            return response
        if is_unavailable(error):
            # An outage, not a bug: one line in the log, a 503 the client may retry.
            logger.warning("Database unavailable on %s %s: %s", request.method, request.path, error.__class__.__name__)
            return unavailable_response()
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Something went wrong on our side. Please try again.", "Server error")

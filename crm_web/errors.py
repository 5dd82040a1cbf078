"""Domain errors, and the one place that maps every error to a page, a toast or JSON."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
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


def register_error_handlers(app: Flask) -> None:
    from crm_web.extensions import db

    @app.errorhandler(CRMException)
    def handle_domain_error(error: CRMException):
        db.session.rollback()
        if isinstance(error, ValidationError) and error.field_errors:
            message = error.message + ": " + "; ".join(error.field_errors.values())
        else:
            message = error.message
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
        db.session.rollback()
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Something went wrong on our side. Please try again.", "Server error")

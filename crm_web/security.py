"""Security headers on every response (CSP without inline scripts, no framing, no sniffing; HSTS when
the site speaks HTTPS), no caching of anything but static files, and input no handler should ever
see (NUL characters)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, request

from crm_web.errors import BadRequest

# Scripts only from our own origin (htmx, SortableJS and app code are vendored); inline style
# attributes are allowed for data-driven colours (tag chips, chart bars), never inline scripts.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def security_headers(config: Any) -> list[tuple[str, str]]:
    """The headers every response carries (views/live.py's idle answer, made outside Flask, too)."""
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    hsts = config.get("HSTS_SECONDS", 0)
    if hsts:
        headers.append(("Strict-Transport-Security", f"max-age={int(hsts)}"))
    return headers


def _add_security_headers(response: Response) -> Response:
    for name, value in security_headers(current_app.config):
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Pages and fragments show one user's data: no browser or proxy may keep a copy (the back
        # button after sign-out asks the server again, and gets the login page).
        response.headers["Cache-Control"] = "no-store"
    return response


def _unstorable(text: str) -> bool:
    """NUL, or half of a UTF-16 surrogate pair (only JSON can carry one): PostgreSQL stores neither."""
    return "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _check_json_form(body: Any) -> None:
    """Flask-WTF reads a JSON body as the form: it must look like one (an object of text values, or of
    lists of text values), with nothing PostgreSQL cannot store."""
    if not isinstance(body, dict):
        raise BadRequest("A JSON body must be an object of text values.")
    for key, value in body.items():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise BadRequest("A JSON body must be an object of text values.")
        if _unstorable(key) or any(_unstorable(item) for item in items):
            raise BadRequest("The request contains a NUL character or an invalid one.")


def _refuse_nul_characters() -> None:
    """PostgreSQL text cannot hold NUL (the query would fail with a 500) and no form can type one:
    refuse it once here rather than in every parameter, form and service, JSON bodies included."""
    for values in (request.args, request.form):
        for key, value in values.items(multi=True):
            if "\x00" in key or "\x00" in value:
                raise BadRequest("The request contains a NUL character.")
    if request.is_json and request.content_length != 0:
        _check_json_form(request.get_json())  # malformed JSON: Werkzeug's own 400


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul_characters)
    app.after_request(_add_security_headers)

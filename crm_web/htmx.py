"""The one place that decides page or fragment, and helpers for htmx response headers."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_fragment() -> bool:
    """A fragment only for a plain htmx request: boosted and history-restore requests need the page."""
    return (
        is_htmx()
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def hx_trigger(response: Response, event: str, detail: Any = None) -> Response:
    """Add an event to HX-Trigger, keeping any already set."""
    existing = response.headers.get("HX-Trigger")
    events: dict[str, Any] = {}
    if existing:
        try:
            events = json.loads(existing)
        except ValueError:
            events = {name.strip(): None for name in existing.split(",")}
    events[event] = detail
    response.headers["HX-Trigger"] = json.dumps(events)
    return response


def hx_location(url: str) -> Response:
    """After an htmx form: navigate like a link click (pushes history, no full reload)."""
    response = Response(status=204)
    response.headers["HX-Location"] = json.dumps({"path": url, "target": "body"})
    return response


def hx_push_url(response: Response, url: str) -> Response:
    response.headers["HX-Push-Url"] = url
    return response


def _vary_on_hx_request(response: Response) -> Response:
    response.vary.add("HX-Request")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_vary_on_hx_request)

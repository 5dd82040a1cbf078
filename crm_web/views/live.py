"""Live pages: what an open board, list or detail page polls (services/live.py, docs/design.md).

`GET /live/<domain>?s=<stamp>&n=<count>[&id=<record>][&board=1&<board query>]`: when the stamp the
page holds is still current the answer is 204 with no SQL statement and no user loaded: the
organisation comes from the signed session, where a full answer of this endpoint wrote it next to
the user's id. Otherwise the signed-in user is loaded as for any page and the answer is:

- the board: its column headers, cards and totals, out of band (templates/deals/board.html), rendered
  once per change and kind of viewer and shared through the cache (_board_update_key);
- a list: a quiet bar "N new changes · Refresh";
- a detail page: "Changed by X a moment ago", and the page refreshes its record (static/js/live.js).

The new stamp travels in the `X-Live-Stamp` header. With the cache away the stamp is OFFLINE: the
page keeps it and catches up once the cache is back.

The idle answer is made in front of the app (IdleChecks, a WSGI layer installed by create_app): a
poll comes every 2 s from every open page, and going through Flask (request context, session
object, rate-limit bookkeeping, hooks) cost several times the one cache round trip it needs, in the
same workers that serve the pages. Whatever it cannot answer goes on to `poll` below, unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

from crm_web.auth import SESSION_SEEN, SESSION_STARTED, public, session_over
from crm_web.entities import DEAL
from crm_web.errors import NotFound
from crm_web.htmx import wants_fragment
from crm_web.models import Role
from crm_web.params import parse_uuid
from crm_web.rendering import render_fragments, render_page
from crm_web.security import security_headers
from crm_web.services import live
from crm_web.services.base import Actor
from crm_web.services.board import BoardService
from crm_web.services.cache import cache_get, cache_set
from crm_web.views.filtering import parse_filtered_list_query
from crm_web.views.generic import acting

bp = Blueprint("live", __name__)

# The signed session's [user id, organisation id], written by a full answer (the idle answer's org).
SESSION_MARK = "_crm_live"
# A rendered board update serves the viewers who poll in the seconds after a change (every 2 s).
BOARD_UPDATE_SECONDS = 30
# Pages that poll: endpoint -> (domain, view argument naming the record, or None).
LIVE_PAGES: dict[str, tuple[str, str | None]] = {
    "board.index": ("deals", None),
    "deals.index": ("deals", None),
    "contacts.index": ("contacts", None),
    "companies.index": ("companies", None),
    "leads.index": ("leads", None),
    "activities.index": ("activities", None),
    "deals.detail": ("deals", "deal_id"),
    "contacts.detail": ("contacts", "contact_id"),
}


def background(view: Any) -> Any:
    """A request the page makes by itself: it does not count as the user's activity (auth.py's idle timeout)."""
    view.is_background = True
    return view


@bp.before_app_request
def _stamp_live_pages() -> None:
    """A polling page's stamp, read before the page reads the database: a change committed while it
    renders is seen by its first poll, never lost. One cache round trip, only on those pages."""
    page = LIVE_PAGES.get(request.endpoint or "")
    if page is None or request.method != "GET" or request.headers.get("HX-Request") == "true":
        return  # a fragment (a search, a filter) keeps the stamp its page was loaded with
    if not current_user.is_authenticated:
        return
    domain, argument = page
    record = (request.view_args or {}).get(argument) if argument else None
    stamp, stamps = live.current(str(current_user.org_id), domain)
    g.live = {
        "domain": domain,
        "record": str(record) if record else "",
        "stamp": stamp,
        "count": int((stamps[0] or {}).get("n", 0)),
    }


@bp.before_app_request
def _record_session_org() -> None:
    """Write the organisation into the signed session on the first page a user opens, so the layers in
    front of the app (the idle answer, the live stream) know it without loading the user."""
    if request.method != "GET" or request.headers.get("HX-Request") == "true":
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "is_background", False) or getattr(view, "is_public", False):
        return  # a poll loads no user while nothing changed; /healthz and /login need none
    if not current_user.is_authenticated:
        return
    mark = [session.get("_user_id"), str(current_user.org_id)]
    if session.get(SESSION_MARK) != mark:
        session[SESSION_MARK] = mark


def recorded_org(data: Any = session) -> str | None:
    """The organisation of the signed session, when a full answer of this endpoint recorded it for the
    same user (and session version); else None (then the user is loaded)."""
    user_key = data.get("_user_id")
    mark = data.get(SESSION_MARK)
    if user_key and isinstance(mark, list) and len(mark) == 2 and mark[0] == user_key:
        return str(mark[1])
    return None


def signed_session(app: Flask, environ: dict[str, Any]) -> dict[str, Any] | None:
    """The signed session cookie of a request, read as Flask reads it (same serializer and lifetime),
    or None when it is missing, forged, expired, or over by the session age checks of auth.py: for the
    layers in front of the app (IdleChecks, crm_web/live_stream.py), which answer without a Flask request."""
    interface = app.session_interface
    if not isinstance(interface, SecureCookieSessionInterface):
        return None
    cookie = parse_cookie(environ).get(app.config["SESSION_COOKIE_NAME"])
    serializer = interface.get_signing_serializer(app)
    if not cookie or serializer is None:
        return None
    try:
        data = serializer.loads(cookie, max_age=int(app.permanent_session_lifetime.total_seconds()))
    except BadSignature:
        return None
    started, seen = data.get(SESSION_STARTED), data.get(SESSION_SEEN)
    if not isinstance(started, int) or not isinstance(seen, int):
        return None
    if session_over(started, seen, int(time.time()), app.config) is not None:
        return None  # the app ends the session and answers as for a signed-out page
    return dict(data)


class IdleChecks:
    """WSGI, in front of the app: answers a poll whose stamp is still current (204, no body), with the
    signed session cookie read as Flask reads it (same serializer and lifetime), the session age
    checks of auth.py, and one cache round trip. Anything else goes on to the app: no recorded
    organisation, a stale stamp, a session that is over, a bad id, a NUL, another method."""

    PREFIX = "/live/"

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "GET" and path.startswith(self.PREFIX):
            stamp = self._idle_stamp(path[len(self.PREFIX) :], environ)
            if stamp is not None:
                headers = [*security_headers(self.app.config), ("Cache-Control", "no-store"), ("X-Live-Stamp", stamp)]
                start_response("204 NO CONTENT", headers)
                return []
        return self.wsgi_app(environ, start_response)

    def _idle_stamp(self, domain: str, environ: dict[str, Any]) -> str | None:
        query = environ.get("QUERY_STRING", "")
        if domain not in live.DOMAINS or "%00" in query or "\x00" in query:
            return None
        args: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            args.setdefault(key, value)  # the first value, as request.args.get gives
        if args.get("id", "").strip():
            try:
                uuid.UUID(args["id"].strip())
            except ValueError:
                return None  # the app's 400
        data = signed_session(self.app, environ)
        org = recorded_org(data) if data is not None else None
        if org is None:
            return None
        with self.app.app_context():  # the cache (Flask-Caching) and its breaker live there
            stamp, _ = live.current(org, domain)
        return stamp if stamp in (args.get("s", ""), live.OFFLINE) else None


def _unchanged(stamp: str) -> Response:
    response = Response(status=204)
    response.headers["X-Live-Stamp"] = stamp
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/live/<domain>")
@public
@background
def poll(domain: str):
    if domain not in live.DOMAINS:
        raise NotFound("There is no such live page.")
    record_id = parse_uuid(request.args.get("id"))  # not an id: 400
    record = str(record_id) if record_id else None
    held = request.args.get("s", "")
    org = recorded_org()
    if org is not None:
        stamp, stamps = live.current(org, domain)
        if stamp == held or stamp == live.OFFLINE:
            return _unchanged(stamp)
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    org = str(current_user.org_id)
    if session.get(SESSION_MARK) != [session.get("_user_id"), org]:
        session[SESSION_MARK] = [session.get("_user_id"), org]
    stamp, stamps = live.current(org, domain)
    if stamp == held or stamp == live.OFFLINE:
        return _unchanged(stamp)
    if request.args.get("board") and domain == "deals":
        response = _board_update(stamp)
    else:
        response = _notice(domain, record, stamps, held)
    response.headers["X-Live-Stamp"] = stamp
    response.headers["Cache-Control"] = "no-store"
    return response


def _board_update(stamp: str) -> Response:
    """Every open board of a pipeline asks for the same update right after a change: the first viewer
    of each kind renders it, the others get that rendering from the cache (_board_update_key)."""
    from crm_web.views.board import board_context

    key = _board_update_key(stamp)
    cached = cache_get(key)
    if isinstance(cached, str):
        return Response(cached, mimetype="text/html")
    query, builder = parse_filtered_list_query(DEAL.filter_fields())
    context = board_context(acting(BoardService), query, builder)
    response = render_page("deals/board.html", block="live_board", live_update=True, **context)
    if response.status_code == 200:
        cache_set(key, response.get_data(as_text=True), timeout=BOARD_UPDATE_SECONDS)
    return response


def _board_update_key(stamp: str) -> str:
    """Everything the board update's HTML depends on besides the data (which the stamp stands for):
    the organisation, the board's query, and what the rendering reads of its viewer. Whose cards a
    viewer may change: any for managers and admins (each role apart, so a role-only control never
    crosses), their own and unowned ones for sales (so one key per sales user); a "mine" board is
    per user; their card fields and the organisation's custom fields, currency and day."""
    user = current_user
    role = Role(user.role)
    args = sorted((k, v) for k, v in request.args.items(multi=True) if k not in ("s", "n"))
    parts = [
        stamp,
        args,
        role.value if role.at_least(Role.MANAGER) else f"own:{user.id}",
        str(user.id) if request.args.get("scope") == "mine" else "",
        (user.list_columns or {}).get("board") or [],
        user.org.custom_fields,
        user.org.default_currency,
        Actor.of(user).today().isoformat(),
        wants_fragment(),
    ]
    digest = hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:40]
    return f"live:board-update:{user.org_id}:{digest}"


def _notice(domain: str, record: str | None, stamps: list[dict[str, Any] | None], held: str) -> Response:
    """The bar of a list ("N new changes") or of a detail page ("Changed by X a moment ago")."""
    me = str(current_user.id)
    since = request.args.get("n", "")
    since_count = int(since) if since.isdigit() else 0
    latest = stamps[0] or {}
    if record is not None:
        changed, by_id, by = live.record_change(stamps, record, since_count)
        if not held or changed == "no" or by_id == me:
            return _counted(latest)  # another record, or the viewer's own change
        return render_fragments("components/live.html", ["live_record"], by=by or "someone")
    count = live.changes_since(stamps, since_count) if since.isdigit() else 1
    if count == 1 and latest.get("by_id") == me:
        return _counted(latest)  # the viewer's own change: their list already shows it
    return render_fragments("components/live.html", ["live_list"], count=count)


def _counted(latest: dict[str, Any]) -> Response:
    """Nothing to show; the page now counts from here."""
    response = Response(status=204)
    response.headers["X-Live-Count"] = str(latest.get("n", 0))
    return response

"""Cached statistics of an organisation: the dashboard's deal rollup, board headers, activity stats,
how many records carry each tag.

Every entry belongs to a *domain* (deals, activities or tags) and its key carries the domain's generation
and the organisation's epoch (services/cache_versions.py): any commit that wrote a table of the
domain (deals, pipelines and stages; activities) starts a new generation, so no write path (a form,
a board move, a bulk action, the trash, a lead conversion, a CLI command) can leave a stale number
behind, and a change the cache could not be told of changes the epoch, so it cannot either. A board
move recomputes the deal numbers only, not the activity stats. Activity stats also expire after a
minute (ACTIVITY_STATS_CACHE_TIMEOUT), because "overdue" and "due today" move with the clock. Deal
numbers move only with writes and the date, which the dashboard's keys carry, so their timeout
(DEAL_STATS_CACHE_TIMEOUT, an hour) is only a safety net for writes made outside the app (psql):
a read-mostly hour does not recompute the whole-table aggregates every minute.

Refresh ahead: an entry is stored with the time after which it is *due* (the last
STATS_REFRESH_AHEAD share of its timeout). A viewer who reads a due entry is served it as it is, and
the first such viewer (one per entry across every process: an atomic cache add, Redis SET NX) has it
recomputed after their response has been sent (`response.call_on_close`: the same worker, in a fresh
app context and session, so none of it counts towards the viewer's statements or time). A dashboard
viewed at least once in that last share of the timeout thus never makes a viewer wait for the
recomputation; one viewed less often recomputes on the request after expiry, as before. Nothing is
served older than its timeout, and a change still starts a new generation at once: the refresh of
an entry of the old generation writes a key nobody reads any more.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, after_this_request, current_app, g, has_request_context

from crm_web.database import use_org
from crm_web.extensions import db
from crm_web.replica import served_by_replica
from crm_web.services import cache_versions
from crm_web.services.cache import cache_add, cache_get, cache_set

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_SETTING = {
    "deals": "DEAL_STATS_CACHE_TIMEOUT",
    "rates": "DEAL_STATS_CACHE_TIMEOUT",
    "activities": "ACTIVITY_STATS_CACHE_TIMEOUT",
    "tags": "DEAL_STATS_CACHE_TIMEOUT",  # like deal numbers, tag counts move only with writes
}
# How long one viewer holds the right to refresh a due entry: the others keep being served the entry
# meanwhile; a refresh that failed is tried again by a viewer after this.
REFRESH_LOCK_SECONDS = 30
# The request's scheduled refreshes (g): (key, org_id, domain, compute).
_PENDING = "stats_refreshes"


@dataclass(frozen=True)
class Entry:
    """A cached value and the wall-clock time (epoch seconds) after which a viewer has it refreshed."""

    value: Any
    due_at: float


def _now() -> float:
    return time.time()


def cached_stats(
    org_id: uuid.UUID, domain: str, name: str, compute: Callable[[], T], *, refresh_ahead: bool = False
) -> T:
    """`compute()` once per version of `domain` (and timeout); `name` says which numbers and for whom.
    With `refresh_ahead`, an entry read in the last part of its life is recomputed after the response
    (module docstring); `compute` must then read through `db.session` (the scoped session), which is the
    refresh's own session by then, never a session object of the request."""
    key = stats_key(org_id, domain, name)
    found = cache_get(key)
    if isinstance(found, Entry):
        if refresh_ahead and _now() >= found.due_at:
            _refresh_after_response(key, org_id, domain, compute)
        return found.value
    if found is not None:  # stored before entries carried their due time
        return found
    value = compute()
    if not served_by_replica(db.session):  # a replica a moment behind must not fill the cache (replica.py)
        _store(key, domain, value)
    return value


def stats_key(org_id: uuid.UUID, domain: str, name: str) -> str:
    """The cache key of an entry of cached_stats (a page prefetches its entries: services/cache.py)."""
    return cache_versions.versioned_key(db.session, org_id, domain, "stats", name)


def _store(key: str, domain: str, value: Any) -> None:
    timeout = int(current_app.config[TIMEOUT_SETTING[domain]])
    ahead = timeout * float(current_app.config.get("STATS_REFRESH_AHEAD", 0.25))
    cache_set(key, Entry(value, _now() + timeout - ahead), timeout=timeout)


def _refresh_after_response(key: str, org_id: uuid.UUID, domain: str, compute: Callable[[], Any]) -> None:
    if not has_request_context():  # the command line and jobs have no response to wait for
        return
    if not cache_add(f"{key}:refreshing", 1, timeout=REFRESH_LOCK_SECONDS):
        return  # another viewer (perhaps on another node) is refreshing it
    pending = g.get(_PENDING)
    if pending is None:
        pending = g.stats_refreshes = []
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        @after_this_request
        def _after_sending(response: Response) -> Response:
            response.call_on_close(lambda: refresh(app, pending))
            return response

    pending.append((key, org_id, domain, compute))


def refresh(app: Flask, pending: list[tuple[str, uuid.UUID, str, Callable[[], Any]]]) -> None:
    """Recompute and store the scheduled entries, each in its own app context and organisation (row-level
    security); a failure is logged and leaves the entry to expire (the next viewer after that recomputes)."""
    for key, org_id, domain, compute in pending:
        with app.app_context():
            try:
                use_org(db.session(), org_id)
                _store(key, domain, compute())
            except Exception:
                logger.exception("Refreshing the cached statistics %s failed", key)

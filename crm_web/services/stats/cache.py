"""Cached statistics of an organisation: the dashboard's deal rollup, board headers, activity stats.

Every entry belongs to a *domain* (deals or activities) and its key carries the domain's generation
and the organisation's epoch (services/cache_versions.py): any commit that wrote a table of the
domain (deals, pipelines and stages; activities) starts a new generation, so no write path (a form,
a board move, a bulk action, the trash, a lead conversion, a CLI command) can leave a stale number
behind, and a change the cache could not be told of changes the epoch, so it cannot either. A board
move recomputes the deal numbers only, not the activity stats. Activity stats also expire after a
minute (ACTIVITY_STATS_CACHE_TIMEOUT), because "overdue" and "due today" move with the clock. Deal
numbers move only with writes and the date, which the dashboard's keys carry, so their timeout
(DEAL_STATS_CACHE_TIMEOUT, an hour) is only a safety net for writes made outside the app (psql):
a read-mostly hour does not recompute the whole-table aggregates every minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from flask import current_app

from crm_web.extensions import db
from crm_web.replica import served_by_replica
from crm_web.services import cache_versions
from crm_web.services.cache import cache_get, cache_set

T = TypeVar("T")

TIMEOUT_SETTING = {
    "deals": "DEAL_STATS_CACHE_TIMEOUT",
    "rates": "DEAL_STATS_CACHE_TIMEOUT",
    "activities": "ACTIVITY_STATS_CACHE_TIMEOUT",
}


def cached_stats(org_id: uuid.UUID, domain: str, name: str, compute: Callable[[], T]) -> T:
    """`compute()` once per version of `domain` (and timeout); `name` says which numbers and for whom."""
    key = cache_versions.versioned_key(db.session, org_id, domain, "stats", name)
    value = cache_get(key)
    if value is None:
        value = compute()
        if not served_by_replica(db.session):  # a replica a moment behind must not fill the cache (replica.py)
            cache_set(key, value, timeout=current_app.config[TIMEOUT_SETTING[domain]])
    return value

"""Cached statistics of an organisation: the dashboard's deal rollup, board headers, activity stats.

Every entry belongs to a *domain* (deals or activities) and its key carries the organisation's
generation of that domain. Any commit that wrote a table of the domain (deals, pipelines and
stages; activities) starts a new generation, so no write path (a form, a board move, a bulk
action, the trash, a lead conversion, a CLI command) can leave a stale number behind: the session
hooks below notice the writes once, for all of them. A board move recomputes the deal numbers
only, not the activity stats. Activity stats also expire after a minute
(ACTIVITY_STATS_CACHE_TIMEOUT), because "overdue" and "due today" move with the clock. Deal numbers
move only with writes and the date, which the dashboard's keys carry, so their timeout
(DEAL_STATS_CACHE_TIMEOUT, an hour) is only a safety net for writes made outside the app (psql):
a read-mostly hour does not recompute the whole-table aggregates every minute.

Bulk statements made outside a request (CLI commands) do not say which organisation they touched;
they start a new generation of the domain for every organisation, which every key carries too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from itertools import chain
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from crm_web.database import CURRENT_ORG_INFO_KEY
from crm_web.services.cache import cache_get_many, cache_set

T = TypeVar("T")

DOMAIN_OF_TABLE = {"deals": "deals", "pipelines": "deals", "pipeline_stages": "deals", "activities": "activities"}
TIMEOUT_SETTING = {"deals": "DEAL_STATS_CACHE_TIMEOUT", "activities": "ACTIVITY_STATS_CACHE_TIMEOUT"}
EVERY_ORG = "*"
_STALE_INFO_KEY = "crm_stale_stats"


def _generation_key(org: str, domain: str) -> str:
    return f"stats_generation:{domain}:{org}"


def _new_generation(org: str, domain: str) -> None:
    cache_set(_generation_key(org, domain), uuid.uuid4().hex, timeout=0)


def cached_stats(org_id: uuid.UUID, domain: str, name: str, compute: Callable[[], T]) -> T:
    """`compute()` once per generation of `domain` (and timeout); `name` says which numbers and for whom."""
    org = str(org_id)
    generations = []
    for owner, generation in zip(
        (EVERY_ORG, org), cache_get_many(_generation_key(EVERY_ORG, domain), _generation_key(org, domain)), strict=False
    ):
        if generation is None:
            generation = uuid.uuid4().hex
            cache_set(_generation_key(owner, domain), generation, timeout=0)
        generations.append(generation)
    key = f"stats:{domain}:{org}:{':'.join(generations)}:{name}"
    (value,) = cache_get_many(key)
    if value is None:
        value = compute()
        cache_set(key, value, timeout=current_app.config[TIMEOUT_SETTING[domain]])
    return value


def invalidate(org_id: uuid.UUID | str) -> None:
    """Every cached statistic of the organisation goes stale at once."""
    for domain in set(DOMAIN_OF_TABLE.values()):
        _new_generation(str(org_id), domain)


# --- noticing writes ---------------------------------------------------------------------------


def _stale(session: Session) -> set[tuple[str, str]]:
    """(org, domain) pairs written by the session's transaction."""
    return session.info.setdefault(_STALE_INFO_KEY, set())


@event.listens_for(Session, "after_flush")
def _note_flushed_rows(session: Session, flush_context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        domain = DOMAIN_OF_TABLE.get(getattr(obj, "__tablename__", ""))
        if domain and getattr(obj, "org_id", None):
            _stale(session).add((str(obj.org_id), domain))


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_statements(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert) or state.bind_mapper is None:
        return
    domain = DOMAIN_OF_TABLE.get(getattr(state.bind_mapper.local_table, "name", ""))
    if domain:
        _stale(state.session).add((state.session.info.get(CURRENT_ORG_INFO_KEY) or EVERY_ORG, domain))


@event.listens_for(Session, "after_commit")
def _start_new_generations(session: Session) -> None:
    for org, domain in session.info.pop(_STALE_INFO_KEY, ()):
        _new_generation(org, domain)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_STALE_INFO_KEY, None)

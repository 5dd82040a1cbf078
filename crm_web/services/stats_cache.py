"""Cached statistics of an organisation: dashboard panels, board headers, activity stats.

Every entry's key carries the organisation's *stats generation*. Any commit that wrote a table
the statistics read (deals, activities, pipelines, stages) starts a new generation, so no write
path (a form, a board move, a bulk action, the trash, a lead conversion, a CLI command) can leave
a stale number behind: the session hooks below notice the writes once, for all of them. Entries
also expire after STATS_CACHE_TIMEOUT, because "overdue" and "this month" move with the clock.

Bulk statements made outside a request (CLI commands) do not say which organisation they touched;
they start a new global generation, which every key carries too.
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

STATS_TABLES = frozenset({"deals", "activities", "pipelines", "pipeline_stages"})
EVERY_ORG = "*"
_STALE_INFO_KEY = "crm_stale_stats"


def _generation_key(org: str) -> str:
    return f"stats_generation:{org}"


def _new_generation(org: str) -> None:
    cache_set(_generation_key(org), uuid.uuid4().hex, timeout=0)


def cached_stats(org_id: uuid.UUID, name: str, compute: Callable[[], T]) -> T:
    """`compute()` once per generation (and timeout); `name` says which numbers and for whom."""
    org = str(org_id)
    every, own = cache_get_many(_generation_key(EVERY_ORG), _generation_key(org))
    if every is None:
        every = uuid.uuid4().hex
        cache_set(_generation_key(EVERY_ORG), every, timeout=0)
    if own is None:
        own = uuid.uuid4().hex
        cache_set(_generation_key(org), own, timeout=0)
    key = f"stats:{org}:{every}:{own}:{name}"
    (value,) = cache_get_many(key)
    if value is None:
        value = compute()
        cache_set(key, value, timeout=current_app.config.get("STATS_CACHE_TIMEOUT", 60))
    return value


def invalidate(org_id: uuid.UUID | str) -> None:
    """Every cached statistic of the organisation goes stale at once."""
    _new_generation(str(org_id))


# --- noticing writes ---------------------------------------------------------------------------


def _stale(session: Session) -> set[str]:
    return session.info.setdefault(_STALE_INFO_KEY, set())


@event.listens_for(Session, "after_flush")
def _note_flushed_rows(session: Session, flush_context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        if getattr(obj, "__tablename__", None) in STATS_TABLES and getattr(obj, "org_id", None):
            _stale(session).add(str(obj.org_id))


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_statements(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert) or state.bind_mapper is None:
        return
    if state.bind_mapper.local_table.name in STATS_TABLES:
        _stale(state.session).add(state.session.info.get(CURRENT_ORG_INFO_KEY) or EVERY_ORG)


@event.listens_for(Session, "after_commit")
def _start_new_generations(session: Session) -> None:
    for org in session.info.pop(_STALE_INFO_KEY, ()):
        _new_generation(org)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_STALE_INFO_KEY, None)

"""Which cached values are current: a generation per domain in the cache, an epoch per organisation
in the database, so that no cached value can outlive a change, whether or not the cache heard of it.

Cached values belong to a *domain* of an organisation: its pipelines (with their stages), its deal
numbers (board headers, dashboard rollups), its activity numbers, its tags' counts or its lists'
saved-view tabs. Every key carries
(`versioned_key`):

- the domain's **generation**, kept in the cache itself: any commit that wrote a table of the
  domain (the session hooks below notice it, for every write path: forms, board moves, bulk
  statements, the trash, a lead conversion, the CLI) sets a new one right after the commit, so
  every process looks for new keys. Bulk statements outside a signed-in PostgreSQL request do not
  say which organisation they touched; they start a new generation for every organisation. A
  request reads its organisation's generations of every domain once, in one round trip, and again
  after a commit of its own that started new ones.
- the organisation's **epoch**, kept in PostgreSQL (`organizations.cache_epoch`): it changes only
  when a new generation could not be stored, because the cache was unreachable or its circuit
  breaker open (services/cache.py). Then the change would be hidden by its old entries once the
  cache is back; instead the epoch changes, in the writing transaction when the breaker is already
  open, else right after it, and every process abandons every entry of the organisation made
  before. Reading the epoch costs no statement in a signed-in request: the user loader loads the
  organisation's row, and a loaded (or newly created) row records its epoch in the session.

Generations and epochs are random, never counters: a lost or rolled-back one is never reused for
different data. A value a process computed from the database just before a commit can only be
stored under the old generation, which nobody asks for again.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterable
from itertools import chain
from typing import Any, cast

from flask import g, has_app_context, has_request_context
from sqlalchemy import Engine, Table, event, inspect, select, update
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.dml import UpdateBase

from crm_web.database import CURRENT_ORG_INFO_KEY, AnySession
from crm_web.models import Organization
from crm_web.services.cache import breaker, cache_get_many, cache_set

logger = logging.getLogger(__name__)

# Which domains a write to a table makes stale (the board headers read stage names and probabilities).
DOMAINS_OF_TABLE: dict[str, tuple[str, ...]] = {
    "pipelines": ("pipelines", "deals"),
    "pipeline_stages": ("pipelines", "deals"),
    "deals": ("deals",),
    "exchange_rates": ("deals", "rates"),  # every cached sum is converted with them
    "activities": ("activities",),
    # A list's saved-view tabs (services/saved_views.py) show the views and their owners' names.
    "saved_views": ("views",),
    "users": ("views",),
    # How many records carry each tag (the tag settings, services/tags.py): the tags and their links.
    "tags": ("tags",),
    "contact_tags": ("tags",),
    "company_tags": ("tags",),
    "lead_tags": ("tags",),
    "deal_tags": ("tags",),
}
# The tagged records: deleting one (a purge) takes its links with it, and a flush of one whose tags
# collection changed writes its links (neither is a write to a link table the hooks see). Their
# other writes leave the counts alone.
TAGGED_TABLES = frozenset({"contacts", "companies", "leads", "deals"})
ALL_DOMAINS = tuple(sorted({domain for domains in DOMAINS_OF_TABLE.values() for domain in domains}))
EVERY_ORG = "*"
_TABLE = cast(Table, Organization.__table__)
_EPOCHS = "crm_cache_epochs"  # session.info: {org id: epoch}
_STALE = "crm_cache_stale"  # session.info: {(org id or EVERY_ORG, domain)} written by the transaction
_NEW_EPOCHS = "crm_cache_new_epochs"  # session.info: epochs set by the transaction, known once it commits
_MEMO = "crm_cache_generations"  # g: the generations the request read (_generations)


def _new() -> str:
    return secrets.token_hex(8)


# --- reading ---------------------------------------------------------------------------------------


def _epochs(session: AnySession) -> dict[str, int]:
    return session.info.setdefault(_EPOCHS, {})


def epoch(session: AnySession, org_id: uuid.UUID | str) -> int:
    """The organisation's epoch: from its row if this session loaded or made it, else one SELECT."""
    known = _epochs(session)
    org = str(org_id)
    if org not in known:
        value = session.scalar(select(_TABLE.c.cache_epoch).where(_TABLE.c.id == uuid.UUID(org)))
        known[org] = value or 0
    return known[org]


def _generation_key(org: str, domain: str) -> str:
    return f"generation:{domain}:{org}"


def _request_memo() -> dict[tuple[str, str], list[str]] | None:
    """The generations this request has read, {(org, domain): [every org's, the org's]}; None outside
    a request (a job or a command may outlive many changes)."""
    if not has_request_context():
        return None
    return cast(dict[tuple[str, str], list[str]], g.setdefault(_MEMO, {}))


def _generations(org: str, domain: str) -> list[str]:
    """[every organisation's, the organisation's] generation of `domain`. In a request, the first
    call reads every domain's in one round trip and the request's later keys reuse them (a page keys
    several domains: the board its pipelines, headers, rates and tabs); its own commits start new
    ones and forget them (_new_generations)."""
    memo = _request_memo()
    if memo is not None and (org, domain) in memo:
        return memo[(org, domain)]
    domains = ALL_DOMAINS if memo is not None else (domain,)
    owners = [(owner, name) for name in domains for owner in (EVERY_ORG, org)]
    found = {}
    for owner, generation in zip(owners, cache_get_many(*(_generation_key(*o) for o in owners)), strict=True):
        if generation is None:  # first use, expired, or the cache is away (then nothing is stored anyway)
            generation = _new()
            cache_set(_generation_key(*owner), generation, timeout=0)
        found[owner] = generation
    read = {(org, name): [found[(EVERY_ORG, name)], found[(org, name)]] for name in domains}
    if memo is not None:
        memo.update(read)
    return read[(org, domain)]


def versioned_key(session: AnySession, org_id: uuid.UUID | str, domain: str, *parts: Any) -> str:
    """`<domain>:<org>:<epoch>:<generations>:<parts...>`: a key no value computed before the last
    change of the domain can have. One cache round trip for the generations, the request's first."""
    org = str(org_id)
    generations = _generations(org, domain)
    return ":".join([domain, org, f"e{epoch(session, org)}", *generations, *(str(p) for p in parts)])


# --- loaded rows tell their epoch ----------------------------------------------------------------


def _remember(target: Organization, session: Session | None) -> None:
    if session is not None and target.id is not None:
        _epochs(session)[str(target.id)] = target.cache_epoch or 0


@event.listens_for(Organization, "load")
def _remember_loaded(target: Organization, context: Any) -> None:
    _remember(target, context.session)


@event.listens_for(Organization, "refresh")
def _remember_refreshed(target: Organization, context: Any, attrs: Iterable[str] | None) -> None:
    _remember(target, context.session)


@event.listens_for(Session, "pending_to_persistent")
def _remember_created(session: Session, instance: Any) -> None:
    if isinstance(instance, Organization):
        _remember(instance, session)


# --- noticing writes ----------------------------------------------------------------------------


def _stale(session: Session) -> set[tuple[str, str]]:
    return session.info.setdefault(_STALE, set())


def _tags_changed(obj: Any) -> bool:
    """Whether the flush writes the record's tag links (its `tags` collection changed; not loaded: no)."""
    return bool(inspect(obj).attrs["tags"].history.has_changes())


@event.listens_for(Session, "after_flush")
def _note_flushed_rows(session: Session, flush_context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        table = getattr(obj, "__tablename__", "")
        domains = DOMAINS_OF_TABLE.get(table, ())
        if table in TAGGED_TABLES and (obj in session.deleted or _tags_changed(obj)):
            domains = (*domains, "tags")
        org_id = getattr(obj, "org_id", None) if domains else None
        if org_id:
            _stale(session).update((str(org_id), domain) for domain in domains)


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_statements(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    # The statement's table, a mapped class's or a plain one's (the tag links have no class).
    table = cast(Table, cast(UpdateBase, state.statement).table).name
    domains = DOMAINS_OF_TABLE.get(table, ())
    if state.is_delete and table in TAGGED_TABLES:
        domains = (*domains, "tags")
    org = state.session.info.get(CURRENT_ORG_INFO_KEY) or EVERY_ORG
    _stale(state.session).update((org, domain) for domain in domains)


def _epoch_statement(orgs: set[str], value: int) -> Any:
    statement = update(_TABLE).values(cache_epoch=value, updated_at=_TABLE.c.updated_at)  # not a change of the org
    if EVERY_ORG not in orgs:
        statement = statement.where(_TABLE.c.id.in_(sorted(uuid.UUID(org) for org in orgs)))
    return statement


def renew_epoch(session: Session, org_id: uuid.UUID) -> None:
    """A new epoch for the organisation in the current transaction: every cached value of it is gone
    once this commits (a bulk write such as an import, whatever the cache's state)."""
    value = secrets.randbits(62)
    session.execute(_epoch_statement({str(org_id)}, value))
    session.info[_NEW_EPOCHS] = ({str(org_id)}, value)


@event.listens_for(Session, "before_commit")
def _new_epochs_while_the_cache_is_away(session: Session) -> None:
    # Flush first, so the writes still pending are noticed too. With the breaker open the new
    # generations cannot be stored after the commit: change the epoch in this very transaction.
    session.flush()
    stale = session.info.get(_STALE)
    if not stale or not breaker.is_open():
        return
    orgs = {org for org, _domain in stale}
    value = secrets.randbits(62)
    session.execute(_epoch_statement(orgs, value))
    session.info[_NEW_EPOCHS] = (orgs, value)


@event.listens_for(Session, "after_commit")
def _new_generations(session: Session) -> None:
    stale = session.info.pop(_STALE, None)
    new_epochs = session.info.pop(_NEW_EPOCHS, None)
    if new_epochs is not None:
        orgs, value = new_epochs
        known = _epochs(session)
        for org in known if EVERY_ORG in orgs else orgs & set(known):
            known[org] = value
    if not stale:
        return
    if has_app_context():
        g.pop(_MEMO, None)  # this request reads the new generations from now on
    lost = {org for org, domain in sorted(stale) if not cache_set(_generation_key(org, domain), _new(), timeout=0)}
    if lost and new_epochs is None:
        _new_epochs_after_the_commit(session, lost)


def _new_epochs_after_the_commit(session: Session, orgs: set[str]) -> None:
    """The cache failed just now, after the commit: the organisations' entries must go all the same."""
    value = secrets.randbits(62)
    bind = session.get_bind()
    try:
        if isinstance(bind, Engine):
            with bind.begin() as connection:
                connection.execute(_epoch_statement(orgs, value))
        else:  # a session bound to a connection (the tests' outer transaction)
            bind.execute(_epoch_statement(orgs, value))
    except Exception:  # the write itself is committed; a failure here only costs freshness until timeouts
        logger.exception("Could not set a new cache epoch for %s after a cache failure", sorted(orgs))
        return
    known = _epochs(session)
    for org in known if EVERY_ORG in orgs else orgs & set(known):
        known[org] = value


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_STALE, None)
    session.info.pop(_NEW_EPOCHS, None)


def mark_stale(session: Session, org_id: uuid.UUID, domain: str) -> None:
    """Renew `domain`'s generation when this transaction commits, for a change no table hook sees
    (the organisation's default currency, which every converted sum depends on)."""
    _stale(session).add((str(org_id), domain))

"""Versions of an organisation's cached data, kept in the database beside the data they describe.

Cached values belong to a *domain* of an organisation: its pipelines (with their stages), its deal
numbers (board headers, dashboard rollups) or its activity numbers. Every key carries the domain's
current version (`versioned_key`), read from the organisation's row (`<domain>_cache_version`).

The commit that writes a table of a domain sets a new random version in the same transaction (the
session hooks below notice the writes, for every write path: forms, board moves, bulk statements,
the trash, a lead conversion, the CLI). So once a change is committed, every process looks for new
keys; nothing needs to reach Redis for that, which a hung or restarting Redis could not promise.
A process that read the old version just before a commit may still store a value under the old
key; nobody asks for that key again. Versions are random, not counters: a rolled-back bump can
never be reused by a later commit for different data.

Reading the versions costs no statement in a signed-in request: the user loader loads the
organisation's row with the user, and a loaded row records its versions in the session. Elsewhere
(the CLI, services called directly) the first lookup selects them once for the session; the
session's own commits keep them current.

Bulk statements made outside a signed-in PostgreSQL request do not say which organisation they
touched; they set a new version of the domain for every organisation.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from itertools import chain
from typing import Any, cast

from sqlalchemy import Table, event, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from crm_web.database import CURRENT_ORG_INFO_KEY, AnySession
from crm_web.models import Organization

DOMAINS = ("pipelines", "deals", "activities")
# Which domains a write to a table makes stale (the board headers read stage names and probabilities).
DOMAINS_OF_TABLE: dict[str, tuple[str, ...]] = {
    "pipelines": ("pipelines", "deals"),
    "pipeline_stages": ("pipelines", "deals"),
    "deals": ("deals",),
    "activities": ("activities",),
}
EVERY_ORG = "*"
_TABLE = cast(Table, Organization.__table__)
_COLUMNS = {domain: _TABLE.c[f"{domain}_cache_version"] for domain in DOMAINS}
_KNOWN = "crm_cache_versions"  # session.info: {org id: {domain: version}}
_STALE = "crm_cache_stale"  # session.info: {(org id or EVERY_ORG, domain)} written by the transaction
_BUMPED = "crm_cache_bumped"  # session.info: the new versions, known once the commit succeeds


def _known(session: AnySession) -> dict[str, dict[str, int]]:
    return session.info.setdefault(_KNOWN, {})


def version(session: AnySession, org_id: uuid.UUID | str, domain: str) -> int:
    """The domain's current version for the organisation."""
    known = _known(session)
    org = str(org_id)
    if org not in known:
        row = session.execute(select(*_COLUMNS.values()).where(Organization.id == uuid.UUID(org))).one_or_none()
        known[org] = dict(zip(DOMAINS, row, strict=True)) if row is not None else dict.fromkeys(DOMAINS, 0)
    return known[org][domain]


def versioned_key(session: AnySession, org_id: uuid.UUID | str, domain: str, *parts: Any) -> str:
    """`<domain>:<org>:v<version>:<parts...>`: a key no value computed before the last change can have."""
    return ":".join([domain, str(org_id), f"v{version(session, org_id, domain)}", *(str(p) for p in parts)])


# --- loaded rows tell their versions ------------------------------------------------------------


def _remember(target: Organization, session: Session | None) -> None:
    if session is not None:
        _known(session)[str(target.id)] = {domain: getattr(target, f"{domain}_cache_version") for domain in DOMAINS}


@event.listens_for(Organization, "load")
def _remember_loaded(target: Organization, context: Any) -> None:
    _remember(target, context.session)


@event.listens_for(Organization, "refresh")
def _remember_refreshed(target: Organization, context: Any, attrs: Iterable[str] | None) -> None:
    _remember(target, context.session)


# --- noticing writes ----------------------------------------------------------------------------


def _stale(session: Session) -> set[tuple[str, str]]:
    return session.info.setdefault(_STALE, set())


@event.listens_for(Session, "after_flush")
def _note_flushed_rows(session: Session, flush_context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        domains = DOMAINS_OF_TABLE.get(getattr(obj, "__tablename__", ""), ())
        org_id = getattr(obj, "org_id", None) if domains else None
        if org_id:
            _stale(session).update((str(org_id), domain) for domain in domains)


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_statements(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert) or state.bind_mapper is None:
        return
    domains = DOMAINS_OF_TABLE.get(cast(Table, state.bind_mapper.local_table).name, ())
    org = state.session.info.get(CURRENT_ORG_INFO_KEY) or EVERY_ORG
    _stale(state.session).update((org, domain) for domain in domains)


@event.listens_for(Session, "before_commit")
def _set_new_versions(session: Session) -> None:
    # Flush first, so the writes still pending are noticed too; then one UPDATE per organisation
    # (in id order, so two transactions never wait on each other's rows in opposite orders), as the
    # transaction's last statement: the row lock is held only for the commit.
    session.flush()
    stale = session.info.pop(_STALE, None)
    if not stale:
        return
    by_org: dict[str, dict[str, int]] = {}
    for org, domain in stale:
        by_org.setdefault(org, {})[domain] = secrets.randbits(62)
    table = _TABLE
    for org in sorted(by_org):
        values = {_COLUMNS[domain].key: new for domain, new in by_org[org].items()}
        statement = update(table).values(updated_at=table.c.updated_at, **values)  # not a change of the org
        if org != EVERY_ORG:
            statement = statement.where(table.c.id == uuid.UUID(org))
        session.execute(statement)
    session.info[_BUMPED] = by_org


@event.listens_for(Session, "after_commit")
def _remember_new_versions(session: Session) -> None:
    bumped = session.info.pop(_BUMPED, None)
    if not bumped:
        return
    known = _known(session)
    for org in sorted(bumped):  # the order of the UPDATEs: a specific org's version wins over EVERY_ORG's
        targets = known.values() if org == EVERY_ORG else [known[org]] if org in known else []
        for target in targets:
            target.update(bumped[org])


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_STALE, None)
    session.info.pop(_BUMPED, None)

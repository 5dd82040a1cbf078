"""Live pages: a change stamp per organisation and domain in the cache, which open pages poll
(docs/design.md, "Live pages").

Every commit that wrote a deal, contact, company, lead or activity (or a pipeline, stage or rate,
which the board shows) sets a new stamp right after the commit, for every write path: the session
hooks below see ORM flushes and bulk statements, like services/cache_versions.py. A stamp is
`{"v": random token, "n": changes so far, "by": who, "at": when, "recent": [[record id, n], ...]}`:
the recent changes tell a detail page whether its record was among them (no key per record: the
in-process cache prunes when it holds too many).

A poll sends the stamp its page was rendered with. The answer when it is still current costs one
cache round trip and no SQL statement (views/live.py); when it is not, the page's changed parts are
rendered as usual. Tokens are random, never counters: a cache that lost its keys (restarted, or
away) gives a new token, so every page catches up instead of missing what happened meanwhile.
Bulk statements outside a signed-in request do not say which organisation they touched; they set
the stamp every organisation's polls also read (EVERY_ORG).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable
from itertools import chain
from typing import Any, cast

from flask import g, has_request_context
from sqlalchemy import Table, event
from sqlalchemy.orm import ORMExecuteState, Session

from crm_web.database import CURRENT_ORG_INFO_KEY
from crm_web.services.cache import breaker, cache_get_many, cache_publish, cache_set

EVERY_ORG = "*"
# Which live domain a write to a table changes (the board shows pipelines, stages and converted sums).
LIVE_DOMAIN_OF_TABLE: dict[str, str] = {
    "deals": "deals",
    "pipelines": "deals",
    "pipeline_stages": "deals",
    "exchange_rates": "deals",
    "contacts": "contacts",
    "companies": "companies",
    "leads": "leads",
    "activities": "activities",
    "notifications": "notifications",  # stamped per recipient only (the bell: views/notifications.py)
}
NOTIFICATIONS = "notifications"
DOMAINS = frozenset(LIVE_DOMAIN_OF_TABLE.values()) - {NOTIFICATIONS}
# The changed records a domain's stamp lists (what a detail page looks for), newest first.
RECENT = 30
# Stamps outlive any open page by far; a lost one only costs a page one refresh.
STAMP_SECONDS = 7 * 24 * 3600
OFFLINE = "offline"
_CHANGED = "crm_live_changed"  # session.info: {(org, domain, record id or None)}
_ACTOR = "crm_live_actor"  # session.info: (org id, user id, name) of who changes things
UNKNOWN = "?"  # a bulk statement's organisation, until the commit says whose transaction it was
ME = "me"  # a bulk change of the acting user's own notifications


def domain_key(org: str, domain: str) -> str:
    return f"live:{domain}:{org}"


def record_key(org: str, domain: str, record_id: uuid.UUID | str) -> str:
    return f"live:{domain}:{org}:{record_id}"


def stream_channel(org: str, user: str | None = None) -> str:
    """What the live streams hear (crm_web/live_stream.py): an organisation's changed domains, and on a
    user's own channel that their bell has something new. Only names travel, never data."""
    return f"live:{org}:{user}" if user else f"live:{org}"


def bell_key(org: str, user: str) -> str:
    """The bell's last answer: what it was computed from and when the next reminder falls due."""
    return f"live:bell:{org}:{user}"


# --- noticing writes ---------------------------------------------------------------------------


def _changed(session: Session) -> set[tuple[str, str, str | None]]:
    return session.info.setdefault(_CHANGED, set())


@event.listens_for(Session, "after_flush")
def _note_flushed_rows(session: Session, flush_context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        domain = LIVE_DOMAIN_OF_TABLE.get(getattr(obj, "__tablename__", ""))
        org_id = getattr(obj, "org_id", None) if domain else None
        if domain == NOTIFICATIONS and org_id:
            _changed(session).add((str(org_id), domain, str(obj.user_id)))
        elif domain and org_id:
            record = str(obj.id) if domain == obj.__tablename__ else None
            _changed(session).add((str(org_id), domain, record))


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_statements(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert) or state.bind_mapper is None:
        return
    domain = LIVE_DOMAIN_OF_TABLE.get(cast(Table, state.bind_mapper.local_table).name)
    if domain is None:
        return
    # The organisation: the request's (PostgreSQL), else the acting user's, known at the commit.
    org = state.session.info.get(CURRENT_ORG_INFO_KEY) or UNKNOWN
    changed = _changed(state.session)
    if domain == NOTIFICATIONS:
        # A user's own "mark read". The bell's reminders (an INSERT) are noted by `remind` with their
        # recipient, and only when one is new: a bell that stamped every time it looked would make the
        # same user's other pages look again, and theirs this one (each tab's stream tells the others).
        if not state.is_insert:
            changed.add((org, domain, ME))
        return
    changed.add((org, domain, None))
    changed.update((org, domain, str(record_id)) for record_id in _statement_ids(state)[:RECENT])


def _statement_ids(state: ORMExecuteState) -> list[Any]:
    """The ids a bulk UPDATE names in `id IN (...)` (the trash, bulk edits), when it says so plainly."""
    where = getattr(state.statement, "whereclause", None)
    found: list[Any] = []
    for clause in getattr(where, "clauses", [where]) if where is not None else []:
        left = getattr(clause, "left", None)
        right = getattr(clause, "right", None)
        if getattr(left, "key", None) == "id" and getattr(right, "value", None) is not None:
            value = right.value  # type: ignore[union-attr]
            if isinstance(value, (list, tuple)):
                found.extend(value)
    return found


def note_notified(session: Session, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """New notifications stored by a bulk statement (the bell's reminders): the recipient's bell
    is told at the commit."""
    _changed(session).add((str(org_id), NOTIFICATIONS, str(user_id)))


def note_actor(session: Session, org_id: uuid.UUID, user_id: uuid.UUID | None, name: str) -> None:
    """Who is changing things in this transaction (services/history.py records every change through
    here): the stamps say so, and bulk statements take their organisation from it."""
    session.info[_ACTOR] = (str(org_id), str(user_id) if user_id else "", name)


def _who(session: Session) -> tuple[str, str, str]:
    """The acting organisation, user id and name: the transaction's actor, else the signed-in user
    (empty outside a request: the CLI, the worker)."""
    actor = session.info.get(_ACTOR)
    if actor:
        return actor
    user = getattr(g, "_login_user", None) if has_request_context() else None
    if user is None or not getattr(user, "is_authenticated", False):
        return "", "", ""
    return str(user.org_id), str(user.id), user.name


@event.listens_for(Session, "after_commit")
def _new_stamps(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    acting_org, by_id, by = _who(session)
    session.info.pop(_ACTOR, None)
    if not changed:
        return
    resolved = set()
    for org, domain, record in changed:
        org = (acting_org or EVERY_ORG) if org == UNKNOWN else org
        if domain == NOTIFICATIONS and record == ME:
            if not by_id or org == EVERY_ORG:
                continue
            record = by_id
        resolved.add((org, domain, record))
    publish(resolved, by_id=by_id, by=by)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_CHANGED, None)
    session.info.pop(_ACTOR, None)


def publish(changed: Iterable[tuple[str, str, str | None]], *, by_id: str = "", by: str = "") -> None:
    """New stamps for the changed domains (one read of the old ones, for their counts and recent
    changes, then one write each) and for the recipients of new notifications. With the cache away
    nothing is stored: every poll then answers OFFLINE and its page catches up once the cache is back."""
    items = sorted(changed, key=lambda item: (item[0], item[1], item[2] or ""))
    recipients = [(org, record) for org, domain, record in items if domain == NOTIFICATIONS and record]
    records: dict[tuple[str, str], list[str]] = {}
    for org, domain, record in items:
        if domain != NOTIFICATIONS:
            records.setdefault((org, domain), [])
            if record is not None:
                records[(org, domain)].append(record)
    domains = sorted(records)
    previous = cache_get_many(*(domain_key(org, domain) for org, domain in domains)) if domains else []
    now = int(time.time())
    for (org, domain), old in zip(domains, previous, strict=True):
        count = int(old.get("n", 0)) + 1 if isinstance(old, dict) else 1
        recent = list(old.get("recent", [])) if isinstance(old, dict) else []
        recent = [[record, count, by_id, by] for record in records[(org, domain)][:RECENT]] + recent
        stamp = {"v": secrets.token_hex(6), "n": count, "by": by, "by_id": by_id, "at": now, "recent": recent[:RECENT]}
        if not cache_set(domain_key(org, domain), stamp, timeout=STAMP_SECONDS):
            return
    for org, user in recipients:
        cache_set(record_key(org, NOTIFICATIONS, user), {"v": secrets.token_hex(6)}, timeout=STAMP_SECONDS)
    # Then tell the open streams, after the stamps they will ask about are stored.
    cache_publish(
        [(stream_channel(org), domain) for org, domain in domains]
        + [(stream_channel(org, user), "bell") for org, user in recipients]
    )


# --- reading -------------------------------------------------------------------------------------


def watched_keys(org: str, domain: str) -> list[str]:
    """What a page of `domain` depends on: the organisation's stamp, and the stamp of bulk changes of
    unknown organisation."""
    return [domain_key(org, domain), domain_key(EVERY_ORG, domain)]


def current(org: str, domain: str) -> tuple[str, list[dict[str, Any] | None]]:
    """The page's stamp now (its parts joined) and the stamps themselves; OFFLINE when the cache is away.
    A missing organisation stamp is created (the first page, or a cache that lost its keys)."""
    keys = watched_keys(org, domain)
    found = cache_get_many(*keys)
    if breaker.is_open():
        return OFFLINE, [None] * len(keys)
    stamps: list[dict[str, Any] | None] = [value if isinstance(value, dict) else None for value in found]
    if stamps[0] is None:
        stamps[0] = {"v": secrets.token_hex(6), "n": 0, "by": "", "by_id": "", "at": 0, "recent": []}
        if not cache_set(keys[0], stamps[0], timeout=STAMP_SECONDS):
            return OFFLINE, [None] * len(keys)
    return ".".join(stamp["v"] if stamp else "-" for stamp in stamps), stamps


def changes_since(stamps: list[dict[str, Any] | None], since: int) -> int:
    """How many changes of the organisation's domain happened after the count `since` (at least one)."""
    first = stamps[0] or {}
    return max(1, int(first.get("n", 0)) - since)


def record_change(stamps: list[dict[str, Any] | None], record: str, since: int) -> tuple[str, str, str]:
    """Whether the record changed after the count `since`, and by whom (id, name): "yes" or "no" from the
    recent changes, "maybe" when they do not reach back that far (or the cache lost them)."""
    first = stamps[0] or {}
    recent = first.get("recent") or []
    for entry in recent:
        if entry[0] == record and entry[1] > since:
            return "yes", entry[2], entry[3]
    oldest = min((entry[1] for entry in recent), default=None)
    if int(first.get("n", 0)) > since and (oldest is None or oldest > since + 1):
        return "maybe", "", ""
    return "no", "", ""

"""Reads from a PostgreSQL streaming replica (optional `DATABASE_REPLICA_URL`), decided in one place.

The read-only pages (`REPLICA_ENDPOINTS`: lists, board, dashboard, search, exports) on a GET may read
from the replica; everything else, every write and every statement that is not a plain SELECT, goes
to the primary. The choice is made by the session itself (`RoutingSession.get_bind`), so no view or
service knows about it:

- Only once a request's organisation is known (the user loader's own statement, which also checks the
  session's validity, always runs on the primary), only for a SELECT without FOR UPDATE, never while
  flushing: nothing that writes can reach the replica, and a hot standby refuses writes anyway.
- Read-your-writes: after every request that may have written (any POST/PUT/PATCH/DELETE, or a GET
  whose session flushed or ran an INSERT/UPDATE/DELETE) the primary's WAL position
  (`pg_current_wal_lsn()`, taken after the commit) is kept in the user's session cookie, which
  every node reads. The replica serves that user only once `pg_last_wal_replay_lsn()` has passed it.
- A replica that is not streaming, not in recovery (promoted: no longer this primary's copy), or whose
  replay is more than DATABASE_REPLICA_MAX_LAG_S behind, is skipped for the request; one that cannot be
  reached is skipped by this process for DATABASE_REPLICA_RETRY_S.
- The first replica read of a request costs one statement of its own (the check above, on the
  replica); a write costs one statement on the primary (the LSN). Without a replica nothing changes.
- Values computed from the replica are not stored in the shared caches (`served_by_replica`): a
  replica a moment behind could otherwise file old numbers under a generation that a commit on the
  primary has just started (services/cache_versions.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import flask_sqlalchemy.session
from flask import Flask, current_app, has_app_context, has_request_context, request, session
from sqlalchemy import Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession

from crm_web.database import CURRENT_ORG_INFO_KEY, AnySession

logger = logging.getLogger(__name__)

# The GET pages that may read from the replica: lists and their fragments, the board, the dashboard,
# search, CSV exports. Forms, detail pages (what a user opens right after saving) and settings stay on
# the primary.
REPLICA_ENDPOINTS = frozenset(
    {
        "contacts.index",
        "contacts.export",
        "companies.index",
        "companies.export",
        "companies.contacts",
        "deals.index",
        "deals.export",
        "leads.index",
        "leads.export",
        "activities.index",
        "activities.timeline",
        "board.index",
        "board.column",
        "dashboard.index",
        "dashboard.overview",
        "dashboard.panel",
        "search.index",
        "search.pick",
    }
)

# session.info keys: the request may read from the replica (the user's last LSN, or "" for none);
# the decision once made (the replica engine, or None for the primary); whether the session wrote.
WANTS_REPLICA_KEY = "crm_replica_wanted"
DECISION_KEY = "crm_replica_engine"
WROTE_KEY = "crm_wrote"
# The Flask session's key for the user's last commit on the primary.
LSN_SESSION_KEY = "_db_lsn"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Whether the replica has replayed everything up to `{lsn}`. A WAL position taken on the primary may sit
# at the end of a page whose last few bytes no record can use (a record header needs 24 bytes and never
# spans pages), while replay reports the end of the last record: a gap under 24 bytes before a page
# boundary holds nothing left to replay.
REPLAYED = (
    "(pg_last_wal_replay_lsn() >= {lsn} OR (({lsn} - '0/0'::pg_lsn) % current_setting('wal_block_size')::int = 0 "
    "AND {lsn} - pg_last_wal_replay_lsn() < 24))"
)
# On the replica: is it a streaming standby, how far behind is its replay, has it replayed `lsn`.
# Lag is 0 while replay has caught up with everything received; otherwise the age of the last
# replayed commit (an overestimate after an idle spell on the primary, which only skips the replica).
_CHECK = text(
    "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver), "
    f"CASE WHEN {REPLAYED.format(lsn='pg_last_wal_receive_lsn()')} THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 1e9) END, "
    f"{REPLAYED.format(lsn='CAST(:lsn AS pg_lsn)')}"
)


@dataclass
class Replica:
    engine: Engine
    max_lag_s: float
    retry_s: float
    down_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usable(self, lsn: str) -> bool:
        """Whether this request may read from the replica (one statement there), `lsn` the user's last write."""
        if time.monotonic() < self.down_until:
            return False
        try:
            with self.engine.connect() as connection:
                row = connection.execute(_CHECK, {"lsn": lsn or "0/0"}).one()
        except DBAPIError as error:
            with self.lock:
                self.down_until = time.monotonic() + self.retry_s
            logger.warning("Read replica unreachable, reading from the primary: %s", error.__class__.__name__)
            return False
        in_recovery, streaming, lag, caught_up = row
        if not in_recovery or not streaming:
            logger.warning("Read replica skipped: %s", "not in recovery" if not in_recovery else "not streaming")
            return False
        return bool(caught_up) and float(lag) <= self.max_lag_s


def replica_for(app: Flask) -> Replica | None:
    return app.extensions.get("crm_replica")


class RoutingSession(flask_sqlalchemy.session.Session):
    """Flask-SQLAlchemy's session, sending a request's plain SELECTs to the replica when allowed."""

    def get_bind(self, mapper: Any | None = None, clause: Any | None = None, bind: Any | None = None, **kwargs: Any):
        if (
            bind is None
            and WANTS_REPLICA_KEY in self.info
            and CURRENT_ORG_INFO_KEY in self.info
            and isinstance(clause, Select)
            and clause._for_update_arg is None
            and not self._flushing
        ):
            if DECISION_KEY not in self.info:
                replica = replica_for(current_app) if has_app_context() else None
                usable = replica is not None and replica.usable(self.info[WANTS_REPLICA_KEY])
                self.info[DECISION_KEY] = replica.engine if usable and replica is not None else None
            engine = self.info[DECISION_KEY]
            if engine is not None:
                return engine
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


@event.listens_for(RoutingSession, "after_flush")
def _flushed(session: OrmSession, flush_context: Any) -> None:
    session.info[WROTE_KEY] = True


@event.listens_for(RoutingSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[WROTE_KEY] = True


def served_by_replica(db_session: AnySession) -> bool:
    """Whether this session has read from the replica (its values must not fill shared caches)."""
    return db_session.info.get(DECISION_KEY) is not None


def init_app(app: Flask, db: Any) -> None:
    """With DATABASE_REPLICA_URL set: the replica's engine, and the per-request hooks."""
    url = app.config.get("DATABASE_REPLICA_URL")
    if not url:
        return
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "postgresql":
        raise ValueError("DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL (the replica's primary).")
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    app.extensions["crm_replica"] = Replica(
        create_engine(url, **options),
        max_lag_s=float(app.config.get("DATABASE_REPLICA_MAX_LAG_S", 5)),
        retry_s=float(app.config.get("DATABASE_REPLICA_RETRY_S", 5)),
    )

    @app.before_request
    def _route_reads() -> None:
        if request.method in ("GET", "HEAD") and request.endpoint in REPLICA_ENDPOINTS:
            db.session.info[WANTS_REPLICA_KEY] = str(session.get(LSN_SESSION_KEY) or "")

    @app.after_request
    def _remember_write(response: Any) -> Any:
        if request.method not in _SAFE_METHODS or db.session.info.get(WROTE_KEY):
            remember_primary_position(db)
        return response


def remember_primary_position(db: Any) -> None:
    """Keep the primary's WAL position, taken after this request's commits, in the user's session."""
    if not has_request_context():
        return
    try:
        with db.engine.connect() as connection:
            lsn = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar()
    except DBAPIError as error:
        logger.warning("Could not read the primary's WAL position: %s", error.__class__.__name__)
        return
    session[LSN_SESSION_KEY] = str(lsn)

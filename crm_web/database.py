"""Engine and session set-up that differs per database, and what a failing database means.

SQLite needs foreign keys and real transactions. PostgreSQL gets, for every transaction of a
signed-in request, the request's org (row-level security, see auth.load_user) and the statement,
lock and idle-in-transaction timeouts, all transaction-local (`set_config(..., true)`, which is
`SET LOCAL`): a pooled connection never carries them into another request, and they work the same
behind a transaction pooler. The first transaction gets them inside the user loader's own
statement; later ones in one `SELECT set_config(...)` when they begin, so neither costs a statement
of its own. Statements before any org is known (the loader's own lookup, sign-in) run under the
role's defaults, which `flask crm web-role` sets to the same values. The typo search sets its
trigram threshold the same way, in the statement before its lookup (services/text_search). The app
keeps no session-level state on a connection (no SET, advisory lock, LISTEN, temporary table or
cursor WITH HOLD), so a transaction may run on any server connection.

Behind PgBouncer in transaction pooling mode (`DATABASE_POOLING=transaction`) consecutive
transactions of one client connection run on different server connections: psycopg must not
prepare statements there (a statement prepared on one server connection is missing on the next, or
clashes with another client's of the same name), so its automatic preparation is turned off.

A pooler or server that is away for a moment (PgBouncer restarting, PostgreSQL refusing connections
while it starts) is waited out when a connection is *opened*: a refused or dropped connect is tried
again with a growing pause, for up to DATABASE_CONNECT_RETRY_SECONDS in all (plus at most one
DB_CONNECT_TIMEOUT_S for an attempt that hangs). Only opening a connection is retried, never a
statement: a transaction cut in flight may have committed, so it fails. A pooled connection that
the pooler dropped fails its pre-ping on checkout and is replaced through the same retried connect.
The pre-ping asks the server only when the connection's socket has something to read: a server or
pooler that ends a connection says so and closes it, which makes the socket readable, so a quiet
socket is a live connection and its checkout costs no round trip (`ping_only_when_heard`). A
connection ended in the instant before its checkout fails in its first statement, like one cut in
flight (below).

A GET or HEAD whose connection is cut in the middle (PgBouncer or PostgreSQL stopped under it) is
served once more, from the start, when nothing in it tried to commit: its transaction was rolled
back with the connection, so a second run cannot do anything twice (`ReplayCutReads`; the second
run's connect waits out the restart like any other). A request that tried to commit, or whose
connect already waited the whole DATABASE_CONNECT_RETRY_SECONDS, is not run again.

A database that restarts, refuses connections for longer, or fires one of the timeouts is
*unavailable*, not broken: `is_unavailable()` tells those errors apart, and crm_web/errors.py answers
them 503 with Retry-After.
"""

from __future__ import annotations

import logging
import select as io_select
import time
from collections.abc import Mapping
from typing import Any

from flask import current_app, g, has_app_context
from sqlalchemy import Engine, String, cast, event, func, literal, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, scoped_session

logger = logging.getLogger(__name__)

# The PostgreSQL setting the row-level security policies read, and where the session keeps it.
CURRENT_ORG_SETTING = "app.current_org"
CURRENT_ORG_INFO_KEY = "crm_current_org"
# A session or Flask-SQLAlchemy's scoped db.session.
AnySession = Session | scoped_session[Any]
# Which timeout profile the session's transactions use ("long" for exports), see use_long_limits().
LIMITS_INFO_KEY = "crm_db_limits"

# PostgreSQL setting -> app setting, per profile (milliseconds; "0" turns a limit off).
TIMEOUT_SETTINGS: dict[str, dict[str, str]] = {
    "default": {
        "statement_timeout": "DB_STATEMENT_TIMEOUT_MS",
        "lock_timeout": "DB_LOCK_TIMEOUT_MS",
        "idle_in_transaction_session_timeout": "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    },
    "long": {
        "statement_timeout": "DB_LONG_STATEMENT_TIMEOUT_MS",
        "lock_timeout": "DB_LOCK_TIMEOUT_MS",
        "idle_in_transaction_session_timeout": "DB_LONG_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    },
}

# SQLSTATEs of a database that is going away, refusing work for now, or cancelled our statement:
# class 08 (connection exception), 57 (operator intervention: query_canceled 57014, admin_shutdown
# 57P01, crash_shutdown 57P02, cannot_connect_now 57P03, idle_session_timeout 57P05), 53 (insufficient
# resources: too_many_connections 53300), lock_not_available 55P03, idle_in_transaction_session_timeout
# 25P03, and serialization/deadlock (40001, 40P01) which a retry resolves.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57", "53")
_UNAVAILABLE_SQLSTATES = {"55P03", "25P03", "40001", "40P01"}


# DATABASE_POOLING: "session" (a direct connection, or a pooler in session mode) or "transaction"
# (PgBouncer's pool_mode = transaction, or any pooler that may switch server connections between
# transactions).
POOLING_MODES = ("session", "transaction")


def prepare_settings(config: dict[str, Any]) -> None:
    """Engine options that depend on the URL: PostgreSQL gives up connecting after DB_CONNECT_TIMEOUT_S;
    under transaction pooling psycopg prepares no statements."""
    pooling = config.get("DATABASE_POOLING") or "session"
    if pooling not in POOLING_MODES:
        raise ValueError(f"DATABASE_POOLING must be one of {', '.join(POOLING_MODES)}, not {pooling!r}")
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    # libpq's default is to wait as long as the kernel does (minutes) for a host that drops packets.
    connect_args.setdefault("connect_timeout", int(config.get("DB_CONNECT_TIMEOUT_S", 5)))
    if pooling == "transaction":
        # psycopg prepares a statement on its fifth run by default, under a name unique per client
        # connection only ("_pg3_0"): behind a transaction pooler that fails with `prepared statement
        # "_pg3_0" already exists` or `does not exist`.
        connect_args["prepare_threshold"] = None
    options["connect_args"] = connect_args
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def configure_engine(engine: Engine, *, connect_retry_s: float = 0) -> None:
    if engine.dialect.name == "postgresql":
        ping_only_when_heard(engine)
    if engine.dialect.name == "postgresql" and connect_retry_s > 0:
        wait_out_refused_connects(engine, connect_retry_s)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_on_connect(dbapi_connection, connection_record):
        # pysqlite opens transactions lazily and breaks SAVEPOINTs; let SQLAlchemy emit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection):
        connection.exec_driver_sql("BEGIN")


def ping_only_when_heard(engine: Engine) -> None:
    """The pool's pre-ping asks the server (a round trip) only about a connection whose socket is not
    quiet (module docstring); every request checks a connection out, so most save the round trip."""
    dialect = engine.dialect
    ask_server = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        return socket_is_quiet(dbapi_connection) or bool(ask_server(dbapi_connection))

    dialect.do_ping = do_ping  # type: ignore[method-assign]


def socket_is_quiet(dbapi_connection: Any) -> bool:
    """Whether an idle psycopg connection is open with nothing from the server waiting on its socket (no
    goodbye, no end of stream, no error). Anything else, or no way to tell, is False: ask the server."""
    if not hasattr(io_select, "poll") or getattr(dbapi_connection, "closed", True):
        return False
    if getattr(dbapi_connection, "broken", True):
        return False
    try:
        poller = io_select.poll()
        poller.register(dbapi_connection.pgconn.socket, io_select.POLLIN | io_select.POLLPRI)
        return not poller.poll(0)
    except Exception:  # a closed libpq connection has no socket (psycopg raises OperationalError)
        return False


# Pauses between connect attempts (seconds): quick at first (a restart is often over in a fraction of
# a second), then at most this often, so a few hundred waiting requests do not hammer a starting pooler.
_CONNECT_FIRST_PAUSE_S = 0.05
_CONNECT_MAX_PAUSE_S = 0.5


# What a server or pooler that answered a connect says when it will take it in a moment: PostgreSQL
# starting, stopping or out of connection slots; PgBouncer out of client slots or not (yet) reaching
# its server. Any other answer (no such database or role, failed authentication) stays the same.
_PASSING_CONNECT_REFUSALS = (
    "starting up",
    "shutting down",
    "not yet accepting connections",
    "in recovery mode",
    "too many clients",
    "connection slots",
    "no more connections allowed",
    "cannot connect to server",
    "server login has been failing",
)


def connect_can_wait(error: BaseException) -> bool:
    """A connect that failed because the server or pooler is away (refused, dropped, timed out) or
    said it is starting, stopping or full, not because the request is wrong (a bad password, a
    missing database): only the former is worth trying again. psycopg gives a failed connect no
    SQLSTATE, so the server's answer is read from the message."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    message = str(error)
    if "FATAL:" not in message and "ERROR:" not in message:
        return True  # nobody answered: refused, reset, closed or timed out
    return any(phrase in message.lower() for phrase in _PASSING_CONNECT_REFUSALS)


def wait_out_refused_connects(engine: Engine, retry_s: float) -> None:
    """Open the engine's connections with retries for up to `retry_s` seconds (see the module docstring)."""

    @event.listens_for(engine, "do_connect")
    def _connect_with_retries(dialect, connection_record, cargs, cparams):
        deadline = time.monotonic() + retry_s
        pause = _CONNECT_FIRST_PAUSE_S
        failures = 0
        while True:
            try:
                connection = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as error:
                if not connect_can_wait(error) or time.monotonic() + pause > deadline:
                    if failures:
                        logger.warning("Database still unreachable after %.1f s of connect retries", retry_s)
                        if has_app_context():
                            g.crm_connect_waited_out = True  # a second run of the request would wait again
                    raise
                if not failures:
                    logger.warning("Database connect failed (%s); retrying for up to %.1f s", error, retry_s)
                failures += 1
                time.sleep(pause)
                pause = min(pause * 2, _CONNECT_MAX_PAUSE_S)
                continue
            if failures:
                logger.warning("Database connect succeeded after %d failed attempts", failures)
            return connection


# --- per-transaction settings --------------------------------------------------------------------


def timeout_values(config: Mapping[str, Any], profile: str = "default") -> dict[str, str]:
    """The PostgreSQL timeouts of a profile, as set_config values (milliseconds)."""
    return {name: str(int(config.get(key) or 0)) for name, key in TIMEOUT_SETTINGS[profile].items()}


def _timeout_columns(profile: str) -> list[Any]:
    if not has_app_context():
        return []
    values = timeout_values(current_app.config, profile)
    return [func.set_config(literal(name), literal(value), True) for name, value in values.items()]


def tenant_settings(org_id: Any, profile: str = "default") -> list[Any]:
    """Columns that set the transaction's org and timeouts, and turn JIT compilation off: select them
    along with the first statement. The app's statements read an index range or aggregate a table;
    compiling one that is costed past `jit_above_cost` (an aggregate over a large organisation's
    rows) took longer than running it."""
    return [
        func.set_config(CURRENT_ORG_SETTING, cast(org_id, String), True),
        func.set_config(literal("jit"), literal("off"), True),
        *_timeout_columns(profile),
    ]


@event.listens_for(Session, "after_begin")
def _reapply_current_org(session, transaction, connection):
    # The user loader sets the org and the timeouts for the request's first transaction inside its own
    # statement. A service commit ends that transaction; the next one must set them again before its
    # first statement. session.info lives as long as the scoped session, which is removed at
    # app-context teardown.
    org_id = session.info.get(CURRENT_ORG_INFO_KEY)
    if org_id is None or connection.dialect.name != "postgresql":
        return
    connection.execute(select(*tenant_settings(org_id, session.info.get(LIMITS_INFO_KEY, "default"))))


def use_long_limits(session: AnySession) -> None:
    """From now on this session's transactions run on the long limits (a streamed export, an import)."""
    session.info[LIMITS_INFO_KEY] = "long"
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(*_timeout_columns("long")))


def apply_timeouts(session: AnySession, statement_ms: int) -> None:
    """A tighter budget for the rest of the current transaction (the health check)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    value = str(int(statement_ms))
    session.execute(
        select(func.set_config("statement_timeout", value, True), func.set_config("lock_timeout", value, True))
    )


# --- a database that is not there right now ------------------------------------------------------


def is_unavailable(error: BaseException) -> bool:
    """True for errors a retry in a few seconds resolves: a restart, a refused or dropped connection,
    a statement, lock or idle timeout that fired, a busy SQLite file, an exhausted connection pool."""
    if isinstance(error, PoolTimeoutError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES) or sqlstate in _UNAVAILABLE_SQLSTATES
    if isinstance(error, OperationalError):
        message = str(original).lower()
        # psycopg raises OperationalError without a SQLSTATE when it cannot reach the server at all;
        # SQLite's are "database is locked" / "busy" (everything else from SQLite is a bug, not an outage).
        if original.__class__.__module__.startswith("psycopg"):
            return True
        return "locked" in message or "busy" in message
    return False


@event.listens_for(Session, "before_commit")
def _note_commit(session: Session) -> None:
    if has_app_context():
        g.crm_commit_tried = True


# The environ key of a request's second run, and the response header (never sent) that asks for it.
REPLAYED_KEY = "crm.replayed"
REPLAY_HEADER = "X-CRM-Replay"


def may_replay(error: BaseException, method: str, environ: Mapping[str, Any]) -> bool:
    """Whether a request that failed with `error` is run once more (module docstring): a GET or HEAD
    whose connection was cut, in its first run, with no commit tried and no connect waited out."""
    return (
        method in ("GET", "HEAD")
        and isinstance(error, DBAPIError)
        and bool(error.connection_invalidated)
        and not environ.get(REPLAYED_KEY)
        and not g.get("crm_commit_tried")
        and not g.get("crm_connect_waited_out")
    )


class ReplayCutReads:
    """WSGI middleware: a response marked with REPLAY_HEADER (crm_web/errors.py) is dropped and the
    request run once more; the second run's answer is sent, whatever it is."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers, exc_info]
            return lambda data: None  # the app builds Werkzeug responses, which never call write()

        body = self.app(environ, capture)
        if any(name == REPLAY_HEADER for name, _ in started[1]):
            if hasattr(body, "close"):
                body.close()
            environ[REPLAYED_KEY] = True
            if has_app_context():
                _forget_the_first_run()
            body = self.app(environ, capture)
        status, headers, exc_info = started
        start_response(status, [(name, value) for name, value in headers if name != REPLAY_HEADER], exc_info)
        return body


def _forget_the_first_run() -> None:
    """Under a caller's app context (the test client pushes one per request) both runs would share `g`
    and the session, which a server's requests never do: start the second run from neither."""
    from crm_web.extensions import db

    try:
        db.session.remove()
    except DBAPIError:
        db.session.registry.clear()
    vars(g._get_current_object()).clear()


def end_sessions_quietly(app: Any) -> None:
    """A connection cut after the response was ready (a restart between the view's last statement and
    the end of the request) must not turn a finished response into a 500 when the session is closed.
    Registered after Flask-SQLAlchemy's own teardown, so it runs first (teardowns run in reverse)."""

    @app.teardown_appcontext
    def _remove_session(exception: BaseException | None) -> None:
        from crm_web.extensions import db

        try:
            db.session.remove()
        except DBAPIError as error:
            if not is_unavailable(error):
                raise
            logger.warning("Database connection lost at the end of a request: %s", error.__class__.__name__)
            try:
                db.session.remove()  # the connection is invalidated by now: closing no longer talks to it
            except DBAPIError:
                db.session.registry.clear()


# --- the web role --------------------------------------------------------------------------------


def role_bypasses_row_security(session: AnySession) -> bool:
    """Whether the connected role ignores the tenant policies: a superuser, BYPASSRLS, or a member of
    the tenant tables' owner (the policies are not FORCEd: the owner is the system role)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(
        session.scalar(
            text(
                "SELECT r.rolsuper OR r.rolbypassrls OR pg_has_role(current_user, c.relowner, 'USAGE') "
                "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'contacts'::regclass"
            )
        )
    )


def refuse_privileged_role_in_production(app: Any) -> None:
    """In production the web app must not run as a role that bypasses the tenant policies: the
    first request of each process checks, and a privileged role makes every request a 503 (logged)
    unless CRM_ALLOW_PRIVILEGED_DB_ROLE is set. The CLI never serves requests, so it may be the owner."""
    if app.config.get("CRM_ENV") != "production" or app.config.get("CRM_ALLOW_PRIVILEGED_DB_ROLE"):
        return
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "postgresql":
        return
    checked: list[bool] = []

    @app.before_request
    def _check_the_role():
        if checked:
            return None
        from crm_web.errors import error_response
        from crm_web.extensions import db

        if role_bypasses_row_security(db.session):
            logger.critical(
                "Refusing requests: the database role bypasses row-level security (superuser, BYPASSRLS or "
                "table owner). Serve with the web role (`flask crm web-role`), see docs/security.md."
            )
            return error_response(503, "The service is misconfigured.", "Service unavailable")
        checked.append(True)
        return None


def use_org(session: Session, org_id: object) -> None:
    """Act for one organisation in a request nobody is signed in to yet (a password link): on
    PostgreSQL, set the row-level security setting now and for the request's later transactions."""
    session.info[CURRENT_ORG_INFO_KEY] = str(org_id)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(*tenant_settings(org_id, session.info.get(LIMITS_INFO_KEY, "default"))))

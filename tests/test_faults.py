"""Faults, against real processes: Redis killed, hung (SIGSTOP) and cut off; PostgreSQL connections
dropped, the server restarted, a table lock held, a statement that runs too long.

Each test starts its own Redis (a private redis-server on a free port), its own PostgreSQL database
on the shared server, or (for the restart) its own PostgreSQL cluster made with initdb: the shared
Redis on 6379 and the shared PostgreSQL server are never stopped, paused or locked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_web.config import cache_settings
from crm_web.extensions import db
from crm_web.services.cache import breaker
from tests import factories
from tests.conftest import HX, TEST_DATABASE_URL, CSRFClient, build_app, postgres_database, unavailable
from tests.redis_support import free_port

pytestmark = pytest.mark.slow  # each test starts and kills its own server

CACHE_LOGGER = "crm_web.services.cache"
UNAVAILABLE_TEXT = "briefly unavailable"


def _p95(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@pytest.fixture(autouse=True)
def _closed_breaker():
    """The cache's circuit breaker is per process: no test inherits another's open breaker."""
    from crm_web.services.cache import breaker

    breaker.reset()
    yield
    breaker.reset()


# --- Redis ---------------------------------------------------------------------------------------


class Partition:
    """A TCP relay in front of Redis that can cut the network: while cut, it accepts connections and
    swallows what either side sends (nothing reaches Redis, nothing comes back), like a dropped route.
    Healing ends the connections that were cut off (the client has given up on them anyway)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.cut = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.sockets += [client, upstream]
            cut_at_birth = self.cut
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target, cut_at_birth), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, cut_at_birth: bool) -> None:
        dropping = cut_at_birth
        try:
            while data := source.recv(65536):
                dropping = dropping or self.cut
                if not dropping:  # once cut, a connection never carries data again
                    target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        self.cut = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:  # cut-off connections end; new ones carry data again
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.heal()


def _pages(application) -> list[str]:
    """Every GET route without path arguments (new pages join the test by themselves)."""
    return sorted(
        rule.rule
        for rule in application.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.arguments
        and rule.endpoint != "static"
        and not rule.endpoint.startswith("auth.")
    )


def _sign_in(application, email: str, password: str):
    client = application.test_client()
    response = client.post("/login", data={"email": email, "password": password})
    return client, response


def _cache_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CACHE_LOGGER and r.levelno >= logging.WARNING]


def _redis_backed_app(tmp_path, redis_url: str, name: str):
    """An app on a SQLite file whose cache and login rate limiter both live in `redis_url`, with an
    admin, a pipeline and two deals. Built in a fixture: the migrations' logging set-up (alembic.ini
    via fileConfig) replaces the root handlers, which would detach caplog inside the test itself."""
    from crm_web.services.base import Actor

    application = build_app(
        f"sqlite:///{tmp_path / f'{name}.sqlite3'}",
        REDIS_URL=redis_url,
        RATELIMIT_STORAGE_URI=redis_url,
        **cache_settings(redis_url),
    )
    application.test_client_class = CSRFClient
    with application.app_context():
        org = factories.make_org(name)
        user = factories.make_user(org, role="admin", email=f"admin@{name}.fault", password="pw")
        pipeline = factories.make_pipeline(org, name="Before the outage")
        stage = factories.stages_of(pipeline)[0]
        for value in (100, 200):
            factories.make_deal(org, stage=stage, value=value, owner_id=user.id)
        application.extensions["fault_actor"] = Actor.of(user)
        application.extensions["fault_ids"] = {"pipeline": pipeline.id, "stage": stage.id, "user": user.id}
        db.session.remove()
    return application


def _dispose(application) -> None:
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def redis_app(private_redis, tmp_path):
    application = _redis_backed_app(tmp_path, private_redis.url, "redisfault")
    yield application
    _dispose(application)


def test_pages_answer_while_redis_is_down_and_caching_resumes_when_it_returns(redis_app, private_redis, caplog):
    from crm_web.services.cache import breaker, cache_get, cache_set
    from crm_web.services.pipelines import PipelineService

    application = redis_app
    actor = application.extensions["fault_actor"]
    client, response = _sign_in(application, "admin@redisfault.fault", "pw")
    assert response.status_code == 303
    pages = _pages(application)
    assert "/" in pages and "/pipelines" in pages
    # With Redis up: what each page answers (some need query parameters and answer 4xx without).
    baseline = {page: client.get(page).status_code for page in pages}
    assert all(status < 500 for status in baseline.values()), baseline
    assert baseline["/"] == baseline["/pipelines"] == 200
    with application.app_context():
        cache_set("fault:probe", "before")
        assert cache_get("fault:probe") == "before"
        assert len(PipelineService(actor).pipeline_list()) == 1
        db.session.remove()

    private_redis.stop()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=CACHE_LOGGER):
        assert {page: client.get(page).status_code for page in pages} == baseline
        # Login rate limiting stores its counters in the same Redis: signing in still works.
        _, response = _sign_in(application, "admin@redisfault.fault", "pw")
        assert response.status_code == 303
        with application.app_context():
            assert cache_get("fault:probe") is None  # a miss, not an error
            cache_set("fault:probe", "during")
            for _ in range(3):  # served from the database, request after request
                pipelines = PipelineService(actor).pipeline_list()
                assert [len(p.stages) for p in pipelines] == [5]
            db.session.remove()
        warnings = _cache_warnings(caplog)
        assert len(warnings) == 1, warnings  # once per outage, not once per call
        assert "Cache unavailable" in warnings[0].getMessage()
        assert client.get("/healthz").get_json() == {
            "status": "degraded",
            "database": "ok",
            "cache": "unavailable",
            "cache_backend": "RedisCache",
        }

        private_redis.start()  # same port: the client's pool reconnects by itself
        # The breaker skips Redis for a few seconds after a failure; the health check asks anyway and
        # its answer closes the breaker.
        assert breaker.allows() is False
        health = client.get("/healthz")
        assert health.status_code == 200 and health.get_json()["cache"] == "ok"
        with application.app_context():
            cache_set("fault:probe", "after")
            assert cache_get("fault:probe") == "after"
            PipelineService(actor).pipeline_list()  # fills the cache again
            statements = []
            engine = db.engine

            def record(conn, cursor, statement, *args):
                statements.append(statement)

            from sqlalchemy import event

            event.listen(engine, "before_cursor_execute", record)
            try:
                assert len(PipelineService(actor).pipeline_list()) == 1
            finally:
                event.remove(engine, "before_cursor_execute", record)
            assert statements == []  # answered from Redis again
            db.session.remove()
        assert "Cache available again." in [r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER]
        assert len(_cache_warnings(caplog)) == 1
    assert {page: client.get(page).status_code for page in pages} == baseline


def _board(client, ids) -> str:
    response = client.get(f"/deals/board?pipeline={ids['pipeline']}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _column_count(board_html: str, stage_id) -> int:
    column = board_html.split(f'id="stage-header-{stage_id}"', 1)[1]
    return int(re.search(r"<strong data-count>(\d+)</strong>", column).group(1))


def _rename_and_add_a_deal(client, ids, name: str) -> None:
    renamed = client.post(f"/pipelines/{ids['pipeline']}/edit", data={"name": name, "currency": "USD"})
    assert renamed.status_code == 303, renamed.get_data(as_text=True)[:500]
    added = client.post(
        "/deals",
        data={"name": "Signed while the cache was away", "value": "50", "currency": "USD", "stage_id": ids["stage"]},
    )
    assert added.status_code in (200, 303), added.get_data(as_text=True)[:500]


def test_a_hung_redis_costs_no_page_more_than_a_bounded_wait_and_leaves_nothing_stale(redis_app, private_redis):
    """SIGSTOP: Redis accepts connections and never answers. Every page still answers, p95 under 1 s
    (without the circuit breaker each page waited out several 0.5 s socket timeouts: 1-6 s), and what
    changed during the hang shows at once when Redis is back, although Redis missed the change."""
    application = redis_app
    ids = application.extensions["fault_ids"]
    client, response = _sign_in(application, "admin@redisfault.fault", "pw")
    assert response.status_code == 303
    pages = [*_pages(application), f"/deals/board?pipeline={ids['pipeline']}"]
    for page in pages:  # warm: every cache this app has is filled
        client.get(page)
    board = _board(client, ids)
    assert "Before the outage" in board and _column_count(board, ids["stage"]) == 2

    private_redis.pause()
    try:
        timings, statuses = [], {}
        for _round in range(3):
            for page in pages:
                started = time.monotonic()
                statuses[page] = client.get(page).status_code
                timings.append(time.monotonic() - started)
        _rename_and_add_a_deal(client, ids, "Renamed during the hang")
        board = _board(client, ids)  # from the database while Redis is away
        assert "Renamed during the hang" in board and _column_count(board, ids["stage"]) == 3
    finally:
        private_redis.resume()
    assert all(status < 500 for status in statuses.values()), statuses
    assert _p95(timings) < 1.0, sorted(timings)[-5:]

    assert client.get("/healthz").get_json()["cache"] == "ok"  # asks Redis, closes the breaker
    board = _board(client, ids)
    assert "Renamed during the hang" in board and "Before the outage" not in board
    assert _column_count(board, ids["stage"]) == 3


@pytest.fixture
def partitioned_app(private_redis, tmp_path):
    partition = Partition(private_redis.port)
    application = _redis_backed_app(tmp_path, partition.url, "partition")
    application.extensions["partition"] = partition
    yield application
    _dispose(application)
    partition.close()


def test_a_change_made_while_redis_was_cut_off_is_never_hidden_by_its_old_cache(partitioned_app):
    """The invalidation that cannot reach Redis is lost for good (not queued in a socket, as with a paused
    process). Before cache versions the old pipeline name and board numbers came back from Redis for up
    to five minutes; now the keys carry versions kept in the database, and the old entries are never
    asked for again."""
    application = partitioned_app
    partition = application.extensions["partition"]
    ids = application.extensions["fault_ids"]
    client, response = _sign_in(application, "admin@partition.fault", "pw")
    assert response.status_code == 303
    board = _board(client, ids)
    assert "Before the outage" in board and _column_count(board, ids["stage"]) == 2
    assert "Before the outage" in client.get("/pipelines").get_data(as_text=True)

    partition.cut = True
    _rename_and_add_a_deal(client, ids, "Renamed behind the partition")
    partition.heal()

    assert client.get("/healthz").get_json()["cache"] == "ok"
    for _ in range(2):  # the first read may fill the cache, the second is served from it
        board = _board(client, ids)
        assert "Renamed behind the partition" in board and "Before the outage" not in board
        assert _column_count(board, ids["stage"]) == 3
        settings_page = client.get("/pipelines").get_data(as_text=True)
        assert "Renamed behind the partition" in settings_page and "Before the outage" not in settings_page


def test_redis_settings_keep_a_hung_redis_from_stalling_requests():
    """A Redis that accepts connections but never answers must cost at most ~0.5 s, for cache and limiter."""
    from crm_web.config import settings_from_env

    cache = cache_settings("redis://127.0.0.1:6379/0")
    assert cache["CACHE_OPTIONS"] == {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    settings = settings_from_env()
    assert settings["RATELIMIT_SWALLOW_ERRORS"] is True
    assert settings["RATELIMIT_STORAGE_OPTIONS"] == {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    assert settings["CACHE_BREAKER_SECONDS"] == 5


@pytest.fixture
def hung_redis():
    """A port that accepts connections (the kernel completes them) but never answers a command."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


@pytest.fixture
def hung_redis_app(hung_redis, tmp_path):
    # RATELIMIT_STORAGE_OPTIONS comes from the default settings (crm_web/config.py): that is under test.
    application = build_app(
        f"sqlite:///{tmp_path / 'hung-redis.sqlite3'}",
        REDIS_URL=hung_redis,
        RATELIMIT_STORAGE_URI=hung_redis,
        CACHE_BREAKER_SECONDS=0.5,
        **cache_settings(hung_redis),
    )
    application.test_client_class = CSRFClient
    with application.app_context():
        org = factories.make_org("hung")
        factories.make_user(org, role="admin", email="admin@hung.redis", password="pw")
        db.session.remove()
    # Making the user asked the hung cache for a new generation of the saved-view tabs (a users write):
    # the tests start with the breaker closed.
    breaker.reset()
    yield application
    _dispose(application)


def test_a_hung_redis_costs_a_bounded_wait_not_a_stalled_sign_in(hung_redis_app):
    from crm_web.services.cache import cache_get

    started = time.monotonic()
    _client, response = _sign_in(hung_redis_app, "admin@hung.redis", "pw")
    sign_in = time.monotonic() - started
    assert response.status_code == 303
    with hung_redis_app.app_context():
        started = time.monotonic()
        assert cache_get("anything") is None
        lookup = time.monotonic() - started
    # 0.5 s socket timeouts: about 0.6 s each here; redis-py's defaults made the sign-in take 5.3 s.
    assert sign_in < 3, sign_in
    assert lookup < 3, lookup


def test_the_breaker_skips_a_hung_redis_until_its_cool_down_ends(hung_redis_app):
    """One socket timeout, then instant misses for CACHE_BREAKER_SECONDS, then one caller tries again."""
    from crm_web.services.cache import cache_get, cache_set

    def timed(call) -> float:
        started = time.monotonic()
        call()
        return time.monotonic() - started

    with hung_redis_app.app_context():
        first = timed(lambda: cache_get("a"))
        skipped = [timed(lambda: cache_get("b")) for _ in range(20)] + [timed(lambda: cache_set("c", 1))]
        time.sleep(0.6)  # the cool-down (0.5 s here) is over
        probe = timed(lambda: cache_get("d"))
        after_probe = timed(lambda: cache_get("e"))
    assert 0.4 < first < 1.5, first
    assert max(skipped) < 0.05, max(skipped)
    assert 0.4 < probe < 1.5, probe
    assert after_probe < 0.05, after_probe


# --- PostgreSQL: dropped connections, requests in flight --------------------------------------


def _terminate_backends(database: str, server_url: str = TEST_DATABASE_URL) -> int:
    """What a PostgreSQL restart does to the app: every connection to its database is cut."""
    admin = create_engine(make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(
                conn.scalars(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                ).all()
            )
    finally:
        admin.dispose()


def _add_slow_route(application) -> None:
    @application.route("/_test/slow")
    def slow():
        db.session.execute(text("SELECT pg_sleep(0.4)"))
        return "done"


@pytest.fixture
def pg_app():
    with postgres_database("crm_fault") as url:
        application = build_app(url, DB_STATEMENT_TIMEOUT_MS=300)
        application.test_client_class = CSRFClient
        _add_slow_route(application)
        with application.app_context():
            org = factories.make_org("pgfault")
            factories.make_user(org, role="admin", email="admin@pg.fault", password="pw")
            factories.make_api_token(org)
            db.session.remove()
        application.extensions["fault_org"] = org.id
        yield application, make_url(url).database
        _dispose(application)


def test_app_recovers_when_postgresql_drops_its_connections(pg_app):
    application, database = pg_app
    client, response = _sign_in(application, "admin@pg.fault", "pw")
    assert response.status_code == 303
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200

    assert _terminate_backends(database) >= 1
    # The pooled connection is dead; pool_pre_ping notices and reconnects before the user loader runs.
    assert client.get("/").status_code == 200
    assert client.get("/healthz").get_json()["database"] == "ok"
    assert _terminate_backends(database) >= 1
    assert client.get("/contacts").status_code == 200


def _assert_unavailable(response, *, kind: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:500]
    assert response.headers["Retry-After"] == "5"
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "OperationalError" not in body and "psycopg" not in body
    if kind == "page":
        assert "<html" in body and UNAVAILABLE_TEXT in body
    elif kind == "toast":
        assert response.headers["HX-Retarget"] == "#toasts" and "<html" not in body and UNAVAILABLE_TEXT in body
    else:
        assert response.is_json and UNAVAILABLE_TEXT in response.get_json()["error"]


@pytest.mark.parametrize("kind", ["page", "toast", "json"])
def test_a_request_in_flight_when_postgresql_drops_it_gets_a_friendly_503(pg_app, caplog, kind):
    """A restart cuts the requests in flight: they answer 503 with Retry-After (a page, an htmx toast, or
    JSON for the internal API), not 500, and the log says it was the database, without a traceback."""
    application, database = pg_app

    @application.route("/_test/in-flight")
    def in_flight():
        db.session.execute(text("SELECT 1"))
        _terminate_backends(database)  # the connection dies mid-request
        db.session.execute(text("SELECT 1"))
        return "unreachable"

    @application.route("/internal/_test/in-flight")
    def internal_in_flight():
        return in_flight()

    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    with caplog.at_level(logging.WARNING, logger="crm_web.errors"):
        if kind == "json":
            response = client.get("/internal/_test/in-flight")
        else:
            response = client.get("/_test/in-flight", headers=HX if kind == "toast" else {})
    _assert_unavailable(response, kind=kind)
    logged = [r for r in caplog.records if r.name == "crm_web.errors"]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING and "Database unavailable" in logged[0].message
    # The next requests are served normally: the dead connection was invalidated, not reused.
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_a_read_cut_in_flight_before_any_commit_is_run_once_more(pg_app, caplog):
    """A GET whose connection is cut mid-request, with nothing committed, is run again from the start
    (its transaction was rolled back with the connection) and answers 200; once only."""
    application, database = pg_app
    runs: list[int] = []

    @application.route("/_test/cut-once")
    def cut_once():
        runs.append(1)
        db.session.execute(text("SELECT 1"))
        if len(runs) == 1:
            _terminate_backends(database)
        db.session.execute(text("SELECT 1"))
        return "served"

    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    with caplog.at_level(logging.INFO, logger="crm_web.errors"):
        response = client.get("/_test/cut-once")
    assert response.status_code == 200 and response.get_data(as_text=True) == "served"
    assert "X-CRM-Replay" not in response.headers
    assert len(runs) == 2
    assert "Database connection cut on GET /_test/cut-once; running it once more" in caplog.text


@pytest.mark.parametrize("method", ["GET after a commit", "POST"])
def test_a_request_that_may_have_written_is_not_run_again(pg_app, method):
    """A request that tried to commit (a GET that wrote, or any POST) is never run twice: it answers 503."""
    application, database = pg_app
    runs: list[int] = []

    @application.route("/_test/cut-after-commit", methods=["GET", "POST"])
    def cut_after_commit():
        runs.append(1)
        if method != "POST":
            db.session.execute(text("SELECT 1"))
            db.session.commit()
        db.session.execute(text("SELECT 1"))
        _terminate_backends(database)
        db.session.execute(text("SELECT 1"))
        return "unreachable"

    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    response = client.post("/_test/cut-after-commit") if method == "POST" else client.get("/_test/cut-after-commit")
    _assert_unavailable(response, kind="page")
    assert "X-CRM-Replay" not in response.headers
    assert len(runs) == 1


def test_a_connection_cut_after_the_response_is_ready_does_not_spoil_it(pg_app, caplog):
    """The restart may come between a view's last statement and the end of the request, where the
    session's transaction is rolled back: that rollback fails, and used to escape as a 500."""
    application, database = pg_app

    @application.route("/_test/cut-after")
    def cut_after():
        db.session.execute(text("SELECT 1"))  # a transaction is open ...
        _terminate_backends(database)  # ... and its connection dies before the teardown closes it
        return "finished"

    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    with caplog.at_level(logging.WARNING, logger="crm_web.database"):
        response = client.get("/_test/cut-after")
    assert response.status_code == 200 and response.get_data(as_text=True) == "finished"
    assert "Database connection lost at the end of a request" in caplog.text
    assert client.get("/").status_code == 200


def test_a_statement_that_runs_too_long_is_cancelled_with_a_503(pg_app):
    application, _database = pg_app
    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    started = time.monotonic()
    response = client.get("/_test/slow")  # pg_sleep(0.4) under DB_STATEMENT_TIMEOUT_MS=300
    assert time.monotonic() - started < 2
    _assert_unavailable(response, kind="page")
    assert client.get("/").status_code == 200


def test_exports_run_on_their_own_longer_limits(pg_app):
    """A streamed CSV export may take minutes: its transaction gets DB_LONG_* instead of the page limits."""
    from sqlalchemy import event

    application, _database = pg_app
    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    captured: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    with application.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get("/contacts/export.csv")
        response.get_data()
        page = client.get("/contacts")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200 and page.status_code == 200

    def values(parameters) -> set[str]:
        return {str(v) for v in (parameters.values() if isinstance(parameters, dict) else parameters or ())}

    settings = [values(parameters) for _, parameters in captured if "statement_timeout" in values(parameters)]
    assert any({"120000", "300000"} <= values for values in settings), settings  # the export's
    assert {"300", "3000", "30000"} <= settings[-1], settings  # the next page's own


# --- PostgreSQL: a table lock held, as the web role ---------------------------------------------


@pytest.fixture
def web_role_app():
    """A database served as the plain web role (`flask crm web-role`), with short limits."""
    from crm_web.services.db_roles import ensure_web_role

    role = f"crm_fault_web_{uuid.uuid4().hex[:8]}"
    limits = {"DB_LOCK_TIMEOUT_MS": 500, "DB_STATEMENT_TIMEOUT_MS": 2_000}
    try:
        with postgres_database("crm_lock") as url:
            owner = build_app(url, **limits)
            with owner.app_context():
                org = factories.make_org("locked")
                factories.make_user(org, role="admin", email="admin@locked.fault", password="pw")
                factories.make_contact(org, last_name="Behind a lock")
                web_role = ensure_web_role(name=role, mark_leakproof=False)
                db.session.remove()
            _dispose(owner)
            from crm_web import create_app
            from tests.conftest import base_config

            application = create_app({**base_config(web_role.url), **limits})
            application.test_client_class = CSRFClient
            yield application, url
            _dispose(application)
    finally:
        admin = create_engine(make_url(TEST_DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _timed_get(client, path: str):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


@pytest.mark.parametrize("table", ["contacts", "users"])
def test_a_table_lock_held_by_someone_else_costs_a_503_not_a_frozen_worker(web_role_app, table):
    """`LOCK TABLE ... ACCESS EXCLUSIVE` held for as long as the test likes: pages that need the table give
    up after DB_LOCK_TIMEOUT_MS with a 503, /healthz answers at once, and everything returns with the lock.
    On `users` even the user loader's own statement gives up (the web role's default lock_timeout)."""
    application, url = web_role_app
    client, response = _sign_in(application, "admin@locked.fault", "pw")
    assert response.status_code == 303
    assert client.get("/contacts").status_code == 200
    holder = create_engine(url)
    try:
        with holder.connect() as conn:
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            page, waited = _timed_get(client, "/contacts")
            assert page.status_code == 503 and page.headers["Retry-After"] == "5", page.status_code
            assert waited < 1.5, waited
            health, health_took = _timed_get(client, "/healthz")
            assert health.status_code == 200 and health.get_json()["database"] == "ok"
            assert health_took < 1.0, health_took
            conn.rollback()
        page = client.get("/contacts")
        assert page.status_code == 200 and "Behind a lock" in page.get_data(as_text=True)
    finally:
        holder.dispose()


# --- PostgreSQL: a restart of the whole server --------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb, pg_ctl) in a temporary directory on a free port, run as
    the `postgres` user when the tests run as root (PostgreSQL refuses to run as root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, cwd="/")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            *extra,
            action,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class _Heard(logging.Handler):
    """The app's log lines, kept."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def private_postgres():
    bindir = _postgres_bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        unavailable("PostgreSQL server binaries (initdb, pg_ctl)")
    server = PrivatePostgres(bindir)
    try:
        server.init()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        server.stop()
        unavailable(f"a private PostgreSQL cluster ({error})")
    yield server
    server.stop()


def test_requests_across_a_postgresql_restart_answer_200_or_503_never_500(private_postgres, caplog):
    """`pg_ctl restart -m fast` while two clients keep requesting pages (one holding a 0.4 s statement):
    a GET cut in flight is run once more, and those arriving while the server is down or starting wait
    for it (DATABASE_CONNECT_RETRY_SECONDS); whatever cannot be served answers 503 with Retry-After;
    nothing answers 500; the first requests after the restart are served normally."""
    admin = create_engine(private_postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE crm_restart"))
    admin.dispose()
    url = make_url(private_postgres.url).set(database="crm_restart").render_as_string(hide_password=False)
    application = build_app(url)
    application.test_client_class = CSRFClient
    _add_slow_route(application)
    with application.app_context():
        org = factories.make_org("restart")
        factories.make_user(org, role="admin", email="admin@restart.fault", password="pw")
        db.session.remove()
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def keep_requesting(client, path: str) -> None:
        while not stop.is_set():
            response = client.get(path)
            response.get_data()
            results.append((response.status_code, response.headers.get("Retry-After")))

    # Heard directly: the migrations' logging set-up (build_app above) detached caplog's handler.
    heard = _Heard()
    logging.getLogger("crm_web").addHandler(heard)
    workers = []
    for path in ("/", "/_test/slow"):
        client, response = _sign_in(application, "admin@restart.fault", "pw")
        assert response.status_code == 303
        workers.append(threading.Thread(target=keep_requesting, args=(client, path)))
    try:
        for worker in workers:
            worker.start()
        while len(results) < 4:  # both clients are getting pages
            time.sleep(0.05)
        with caplog.at_level(logging.INFO, logger="crm_web.errors"):
            private_postgres.restart()
            time.sleep(0.3)
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
        statuses = [status for status, _ in results]
        assert statuses and set(statuses) <= {200, 503}, sorted(set(statuses))
        # The restart reached the requests: one was cut (503, or a GET run once more: database.ReplayCutReads,
        # usually served by then) or found the server away and waited for it (the connect retry).
        met = ("running it once more", "Database connect failed")
        assert 503 in statuses or any(text in line for line in heard.lines for text in met), "no request met"
        assert all(retry == "5" for status, retry in results if status == 503)
        assert not [line for line in heard.lines if "Unhandled error" in line]
        client, response = _sign_in(application, "admin@restart.fault", "pw")
        assert response.status_code == 303
        assert client.get("/").status_code == 200
        assert client.get("/healthz").get_json()["database"] == "ok"
    finally:
        logging.getLogger("crm_web").removeHandler(heard)
        stop.set()
        _dispose(application)


# --- PgBouncer restarted -------------------------------------------------------------------------

# How long the pooled app waits out a refused connect in these tests (DATABASE_CONNECT_RETRY_SECONDS).
POOLER_RETRY_S = 3.0


@pytest.fixture
def private_pgbouncer():
    """A PgBouncer of this test's own (transaction pooling), so it can be stopped without touching the
    session's (tests/conftest.py)."""
    from tests import pgbouncer_support

    if not pgbouncer_support.available():
        unavailable(f"pgbouncer at {pgbouncer_support.PGBOUNCER}")
    bouncer = pgbouncer_support.PgBouncer.start(TEST_DATABASE_URL)
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pooled_app(private_pgbouncer):
    """An app that reaches PostgreSQL only through the private PgBouncer, with a bounded connect retry."""
    from crm_web import create_app
    from tests.conftest import base_config

    with postgres_database("crm_fault") as url:
        direct = build_app(url)  # migrations and fixtures directly, as an operator runs them
        with direct.app_context():
            org = factories.make_org("poolfault")
            factories.make_user(org, role="admin", email="admin@pool.fault", password="pw")
            db.session.remove()
        _dispose(direct)
        application = create_app(
            {
                **base_config(private_pgbouncer.url(url)),
                "DATABASE_POOLING": "transaction",
                "DATABASE_CONNECT_RETRY_SECONDS": POOLER_RETRY_S,
            }
        )
        application.test_client_class = CSRFClient
        yield application
        _dispose(application)


def _get_in_a_thread(client, path: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        response = client.get(path)
        outcome.update(status=response.status_code, body=response.get_data(as_text=True))
        outcome["retry_after"] = response.headers.get("Retry-After")
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_request_waits_out_a_pgbouncer_restart_and_a_longer_outage_still_gets_a_readable_503(
    pooled_app, private_pgbouncer, caplog
):
    """PgBouncer stopped (SIGTERM cuts every pooled connection) and started again a second later: a
    request made while it is down waits (its pooled connection fails the pre-ping, the new connect is
    refused and tried again) and answers 200. Down for longer than DATABASE_CONNECT_RETRY_SECONDS, a
    request answers the readable 503 with Retry-After once the bound is spent, and the next one after
    PgBouncer returns is served."""
    client, response = _sign_in(pooled_app, "admin@pool.fault", "pw")
    assert response.status_code == 303
    assert client.get("/contacts").status_code == 200  # a pooled connection to the PgBouncer about to go

    with caplog.at_level(logging.WARNING, logger="crm_web.database"):
        private_pgbouncer.halt()
        thread, outcome = _get_in_a_thread(client, "/contacts")
        time.sleep(1.0)
        assert thread.is_alive(), f"the request did not wait for PgBouncer: {outcome}"
        private_pgbouncer.launch()
        thread.join(timeout=30)
    assert outcome["status"] == 200, outcome["body"][:500]
    assert 1.0 <= outcome["seconds"] < POOLER_RETRY_S + 1, outcome["seconds"]
    assert "retrying for up to 3.0 s" in caplog.text and "Database connect succeeded after" in caplog.text
    assert client.get("/").status_code == 200

    private_pgbouncer.halt()
    try:
        thread, outcome = _get_in_a_thread(client, "/contacts")
        thread.join(timeout=30)
        assert outcome["status"] == 503, outcome["body"][:500]
        assert outcome["retry_after"] == "5"
        assert UNAVAILABLE_TEXT in outcome["body"] and "Traceback" not in outcome["body"]
        assert POOLER_RETRY_S - 0.6 <= outcome["seconds"] < POOLER_RETRY_S + 2, outcome["seconds"]
    finally:
        private_pgbouncer.launch()
    assert client.get("/contacts").status_code == 200


def test_a_connect_refused_for_a_reason_a_wait_does_not_fix_is_not_retried():
    """A missing database (or a wrong password) fails at once: only an absent server or pooler is waited for."""
    from sqlalchemy.exc import OperationalError

    from crm_web.database import configure_engine

    engine = create_engine(make_url(TEST_DATABASE_URL).set(database=f"crm_missing_{uuid.uuid4().hex[:8]}"))
    configure_engine(engine, connect_retry_s=5)
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="does not exist"), engine.connect():
            pass
    finally:
        engine.dispose()
    assert time.monotonic() - started < 1.5

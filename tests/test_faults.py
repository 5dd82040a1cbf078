"""Faults: Redis stopping mid-run and PostgreSQL dropping the app's connections.

Each test starts its own Redis (a private redis-server on a free port) or its own PostgreSQL
database: the shared Redis on 6379 and the shared PostgreSQL server are never stopped.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_web.config import cache_settings
from crm_web.extensions import db
from tests import factories
from tests.conftest import TEST_DATABASE_URL, CSRFClient, build_app, postgres_database, unavailable

pytestmark = pytest.mark.slow  # each test starts and kills its own server

CACHE_LOGGER = "crm_web.services.cache"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own, so it can be killed without touching anyone else's."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 5
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    unavailable(f"a private redis-server on port {self.port}")
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


@pytest.fixture
def private_redis():
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server")
    server = PrivateRedis(binary)
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def redis_app(private_redis, tmp_path):
    """An app whose cache and login rate limiter both live in the private Redis.

    Built in a fixture: the migrations' logging set-up (alembic.ini via fileConfig) replaces the
    root handlers, which would detach caplog if it ran inside the test itself.
    """
    from crm_web.services.base import Actor

    application = build_app(
        f"sqlite:///{tmp_path / 'redis-fault.sqlite3'}",
        REDIS_URL=private_redis.url,
        RATELIMIT_STORAGE_URI=private_redis.url,
        **cache_settings(private_redis.url),
    )
    application.test_client_class = CSRFClient
    with application.app_context():
        org = factories.make_org("redisfault")
        user = factories.make_user(org, role="admin", email="admin@redis.fault", password="pw")
        factories.make_pipeline(org)
        application.extensions["fault_actor"] = Actor.of(user)
        db.session.remove()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_pages_answer_while_redis_is_down_and_caching_resumes_when_it_returns(redis_app, private_redis, caplog):
    from crm_web.services.cache import cache_get, cache_set
    from crm_web.services.pipelines import PipelineService

    application = redis_app
    actor = application.extensions["fault_actor"]
    client, response = _sign_in(application, "admin@redis.fault", "pw")
    assert response.status_code == 303
    pages = _pages(application)
    assert "/" in pages and "/pipelines" in pages
    # With Redis up: what each page answers (some need query parameters and answer 4xx without).
    baseline = {page: client.get(page).status_code for page in pages}
    assert all(status < 500 for status in baseline.values()), baseline
    assert baseline["/"] == baseline["/pipelines"] == 200
    with application.app_context():
        cache_set("fault:probe", "before")
        assert cache_get("fault:probe") == "before"  # also clears any earlier outage state
        assert len(PipelineService(actor).pipeline_list()) == 1
        db.session.remove()

    private_redis.stop()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=CACHE_LOGGER):
        assert {page: client.get(page).status_code for page in pages} == baseline
        # Login rate limiting stores its counters in the same Redis: signing in still works.
        _, response = _sign_in(application, "admin@redis.fault", "pw")
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

        private_redis.start()  # same port: the client's pool reconnects by itself
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


def test_redis_settings_keep_a_hung_redis_from_stalling_requests():
    """A Redis that accepts connections but never answers must cost at most ~0.5 s, for cache and limiter."""
    from crm_web.config import settings_from_env

    cache = cache_settings("redis://127.0.0.1:6379/0")
    assert cache["CACHE_OPTIONS"] == {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    settings = settings_from_env()
    assert settings["RATELIMIT_SWALLOW_ERRORS"] is True
    assert settings["RATELIMIT_STORAGE_OPTIONS"] == {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


# --- PostgreSQL --------------------------------------------------------------------------------


def _terminate_backends(database: str) -> int:
    """What a PostgreSQL restart does to the app: every connection to its database is cut."""
    admin = create_engine(make_url(TEST_DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
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


@pytest.fixture
def pg_app():
    with postgres_database("crm_fault") as url:
        application = build_app(url)
        application.test_client_class = CSRFClient
        with application.app_context():
            org = factories.make_org("pgfault")
            factories.make_user(org, role="admin", email="admin@pg.fault", password="pw")
            db.session.remove()
        yield application, make_url(url).database
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


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


def test_a_request_in_flight_when_postgresql_drops_it_gets_a_clean_500(pg_app, caplog):
    application, database = pg_app

    @application.route("/_test/in-flight")
    def in_flight():
        db.session.execute(text("SELECT 1"))
        _terminate_backends(database)  # the connection dies mid-request
        db.session.execute(text("SELECT 1"))
        return "unreachable"

    client, _ = _sign_in(application, "admin@pg.fault", "pw")
    with caplog.at_level(logging.ERROR, logger="crm_web.errors"):
        response = client.get("/_test/in-flight")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side" in body
    assert "Traceback" not in body and "OperationalError" not in body and "psycopg" not in body
    logged = [r for r in caplog.records if r.name == "crm_web.errors" and r.levelno == logging.ERROR]
    assert len(logged) == 1 and logged[0].exc_info is not None  # the traceback is in the log
    # The next requests are served normally: the dead connection was invalidated, not reused.
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200


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
        **cache_settings(hung_redis),
    )
    application.test_client_class = CSRFClient
    with application.app_context():
        org = factories.make_org("hung")
        factories.make_user(org, role="admin", email="admin@hung.redis", password="pw")
        db.session.remove()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


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

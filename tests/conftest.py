"""Test harness: one app per database engine, schema built by the migrations, each test rolled back.

- `app` is parametrized over SQLite (always) and PostgreSQL (a throw-away database on
  TEST_DATABASE_URL). With CI=true a missing PostgreSQL, Redis or Chromium fails the run.
- Each test runs inside an outer transaction that is rolled back; services' commits
  become savepoint releases (join_transaction_mode="create_savepoint").
- `count_queries()` counts the SQL statements the app sends (query budgets).
- TEST_PGBOUNCER=1 runs the PostgreSQL tests through a private PgBouncer in transaction pooling mode
  (tests/pgbouncer_support.py; `make test` runs a subset that way): every connection the tests
  open, the app's included, goes through it, and the app runs with DATABASE_POOLING=transaction. The
  SQLite app is left out of that run. With CI=true a missing pgbouncer fails the run.
- Under pytest-xdist (`make test`) every worker builds its own apps, databases, live server and
  PgBouncer, and uses its own Redis database (`worker_redis_url`): tests may share nothing else.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import g
from flask.testing import FlaskClient
from flask_migrate import upgrade
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from crm_web import create_app
from crm_web.extensions import db
from tests import factories, pgbouncer_support

CI = os.environ.get("CI", "").lower() == "true"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
# The PostgreSQL server itself, also when TEST_DATABASE_URL is rewritten to go through PgBouncer.
DIRECT_DATABASE_URL = TEST_DATABASE_URL
THROUGH_PGBOUNCER = os.environ.get("TEST_PGBOUNCER", "").lower() in {"1", "true", "yes"}
# Under pytest-xdist each worker (PYTEST_XDIST_WORKER=gw0, gw1, ...) gets a Redis database of its own: the
# URL's database number plus the worker's, so one worker's keys (rate limits, cache, queues) never meet another's.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def worker_redis_url(url: str, worker: str = XDIST_WORKER) -> str:
    """`url` with its database number moved up by the xdist worker's number (unchanged without xdist)."""
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{base + int(worker[2:])}"))


TEST_REDIS_URL = worker_redis_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
CHROMIUM = "/usr/bin/chromium"
MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")
HX = {"HX-Request": "true"}
# Statements every signed-in request spends before the page's own work: loading the user.
LOGIN_STATEMENTS = 1


def tenant_statements(engine_name: str, *, commits: int) -> int:
    """Statements re-applying the tenant (row-level security) setting: on PostgreSQL, one for each
    transaction a request begins after a service commit (see crm_web/database.py)."""
    return commits if engine_name == "postgresql" else 0


_pgbouncer: list[pgbouncer_support.PgBouncer] = []


def pgbouncer_or_none() -> pgbouncer_support.PgBouncer | None:
    """The session's private PgBouncer, started on first use; None (after skip/fail) if there is none."""
    if not _pgbouncer:
        if not pgbouncer_support.available():
            return None
        _pgbouncer.append(pgbouncer_support.PgBouncer.start(DIRECT_DATABASE_URL))
    return _pgbouncer[0]


def is_xdist_controller(config) -> bool:
    """The process that hands tests to pytest-xdist workers and runs none itself."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config):
    global TEST_DATABASE_URL
    if THROUGH_PGBOUNCER:
        if not pgbouncer_support.available():
            raise pytest.UsageError(f"TEST_PGBOUNCER=1 needs pgbouncer at {pgbouncer_support.PGBOUNCER}")
        if is_xdist_controller(config):
            return  # each worker starts its own PgBouncer (on its own free port)
        bouncer = pgbouncer_or_none()
        assert bouncer is not None
        TEST_DATABASE_URL = bouncer.url(DIRECT_DATABASE_URL)


def pytest_unconfigure(config):
    while _pgbouncer:
        _pgbouncer.pop().stop()


@pytest.fixture(scope="session")
def pgbouncer() -> pgbouncer_support.PgBouncer:
    bouncer = pgbouncer_or_none()
    if bouncer is None:
        unavailable(f"pgbouncer at {pgbouncer_support.PGBOUNCER}")
    assert bouncer is not None
    return bouncer


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.postgres_only` tests run only with the PostgreSQL app (never skipped on SQLite)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("app") == "sqlite"
        (drop if on_sqlite and item.get_closest_marker("postgres_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: CI must run every kind of test."""
    if CI:
        pytest.fail(f"{what} is required when CI=true", pytrace=False)
    pytest.skip(f"{what} is not available")


def base_config(database_url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "CACHE_TYPE": "SimpleCache",
        "REDIS_URL": None,
        "SERVER_NAME": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        "LOGIN_RATE_LIMIT": "1000 per minute",  # tests sign in often; test_security sets a real limit
        "LOGIN_ACCOUNT_RATE_LIMIT": "1000 per minute",
        "DATABASE_POOLING": "transaction" if THROUGH_PGBOUNCER else "session",
        # Imports run in the request (no thread outliving the test's transaction); uploads go to a temp dir.
        "IMPORT_JOBS": "inline",
        "IMPORT_DIR": tempfile.mkdtemp(prefix="crm-test-imports-"),
    }


@contextmanager
def postgres_database(prefix: str = "crm_test") -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    admin_url = make_url(TEST_DATABASE_URL).set(database="postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        unavailable(f"PostgreSQL at {TEST_DATABASE_URL} ({type(error).__name__})")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def build_app(database_url: str, **overrides):
    app = create_app({**base_config(database_url), **overrides})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        db.session.remove()
    return app


@pytest.fixture(scope="session", params=["postgresql"] if THROUGH_PGBOUNCER else ["sqlite", "postgresql"])
def app(request, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.sqlite3"
        application = build_app(f"sqlite:///{path}")
        yield application
        with application.app_context():
            db.engine.dispose()
    else:
        with postgres_database() as url:
            application = build_app(url)
            if THROUGH_PGBOUNCER and _pgbouncer:
                _pgbouncer[0].warm(url)  # several server connections for the tests' transactions to move between
            yield application
            with application.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def engine_name(app) -> str:
    return make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()


@pytest.fixture(autouse=True)
def _app_context(request):
    """Tests that use `app` run inside its context with a rolled-back outer transaction."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original_session = db.session
        # The app's own kind of scoped session (one per app context), bound to the test's connection:
        # services' commits release savepoints of the outer transaction.
        db.session = scoped_session(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False),
            scopefunc=lambda: id(g._get_current_object()),  # `g` is one object per app context
        )
        try:
            yield
        finally:
            db.session.remove()
            db.session = original_session
            outer.rollback()
            connection.close()
        from crm_web.extensions import cache, limiter
        from crm_web.services.cache import breaker

        cache.clear()
        breaker.reset()  # per process: a test that made the cache fail must not open it for the next
        limiter.reset()  # the session-wide app's in-memory counters: one test's failures are not the next's


class CSRFClient(FlaskClient):
    """A test client that sends a valid CSRF token header on unsafe methods (csrf=False to omit it)."""

    def open(self, *args, csrf: bool = True, **kwargs):
        method = (kwargs.get("method") or "GET").upper()
        if csrf and method not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        # A fresh app context per request, as in production: its own `g` and its own session
        # (bound to the test's connection, so it still sees and rolls back with the test's data).
        with self.application.app_context():
            return super().open(*args, **kwargs)

    def csrf_token(self) -> str:
        with self.session_transaction() as session:
            raw = session.setdefault("csrf_token", uuid.uuid4().hex)
        serializer = URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token")
        return serializer.dumps(raw)


@pytest.fixture
def client(app):
    app.test_client_class = CSRFClient
    return app.test_client()


@pytest.fixture
def org(app):
    return factories.make_org("acme")


@pytest.fixture
def other_org(app):
    return factories.make_org("globex")


@pytest.fixture
def users(org):
    """One user per role in `org`."""
    return {role: factories.make_user(org, role=role) for role in ("admin", "manager", "sales")}


@pytest.fixture
def login(client, users):
    """login("sales") signs the client in as that role's user and returns the user."""

    def _login(role_or_user="admin"):
        user = users[role_or_user] if isinstance(role_or_user, str) else role_or_user
        with client.session_transaction() as session:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True
        return user

    return _login


@pytest.fixture
def actor(users):
    """A service Actor for the admin of `org` (use factories.actor_for for other users)."""
    return factories.actor_for(users["admin"])


class QueryCounter:
    IGNORED = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT)\b", re.IGNORECASE)

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    @property
    def count(self) -> int:
        return len(self.statements)

    def __repr__(self) -> str:
        return f"<{len(self)} statements>\n" + "\n---\n".join(self.statements)


@pytest.fixture
def count_queries(app):
    """`with count_queries() as q: ...; assert q.count <= N` (transaction control is not counted)."""

    @contextmanager
    def _count():
        counter = QueryCounter()

        def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
            if not QueryCounter.IGNORED.match(statement):
                counter.statements.append(statement)

        engine = db.engine
        event.listen(engine, "before_cursor_execute", before_cursor_execute)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", before_cursor_execute)

    return _count


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        unavailable(f"Redis at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


# --- browser tests --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        unavailable(f"Chromium at {CHROMIUM}")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


LIVE_APPS: dict[str, Any] = {}  # live server URL -> the app it serves (a browser test may change a setting)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """The app served over HTTP from a thread, on a fresh SQLite file with the demo data."""
    from werkzeug.serving import make_server

    from crm_web.services import seeding

    path = tmp_path_factory.mktemp("live") / "live.sqlite3"
    application = build_app(f"sqlite:///{path}")
    with application.app_context():
        org, _ = seeding.ensure_demo_org()
        seeding.Seeder(org, seed=7).run(companies=10, contacts=30, leads=10, deals=20, activities=30)
        db.session.remove()
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.application_ref = application
    url = f"http://127.0.0.1:{server.server_port}"
    LIVE_APPS[url] = application
    yield url
    server.shutdown()
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def live_db(live_server, tmp_path_factory):
    """A second app on the live server's SQLite file: to prepare data the UI cannot make yet, or to look
    up the demo data."""
    path = next(tmp_path_factory.getbasetemp().glob("live*/live.sqlite3"))
    application = build_app(f"sqlite:///{path}")
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def private_redis():
    """A redis-server of this test's own (tests/redis_support.py): stopping it touches no one else."""
    import shutil

    from tests.redis_support import PrivateRedis

    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server")
    server = PrivateRedis(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def page_errors(page):
    """The page's console errors and uncaught exceptions, collected from the start of the test."""
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture
def browser_login(live_server):
    """browser_login(page, "sales") signs a Playwright page in as a demo user."""

    def _login(page, role: str = "admin"):
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", f"{role}@example.com")
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        # The landing page: `/` (the dashboard, or My day for sales), or My day itself.
        page.wait_for_url(re.compile(re.escape(live_server) + r"/(my-day)?$"))
        return page

    return _login


# A small world of contacts (tests/test_contacts_service.py, tests/test_contacts_views.py).
@pytest.fixture
def people(org, users):
    co = factories.make_company(org, name="Acme Corp")
    sales = users["sales"]
    john = factories.make_contact(
        org,
        first_name="John",
        last_name="Smith",
        email="john@acme.com",
        primary_company_id=co.id,
        owner_id=sales.id,
        status="customer",
    )
    jane = factories.make_contact(
        org, first_name="Jane", last_name="Doe", email="jane@acme.com", owner_id=users["manager"].id
    )
    bob = factories.make_contact(org, first_name="Bob", last_name="Stone", email="bob@else.com", owner_id=sales.id)
    pipeline = factories.make_pipeline(org)
    factories.make_deal(org, pipeline=pipeline, contact_id=john.id)
    factories.make_deal(org, pipeline=pipeline, contact_id=john.id)
    gone = factories.make_deal(org, pipeline=pipeline, contact_id=john.id)
    gone.deleted_at = gone.created_at
    db.session.commit()
    factories.make_activity(org, contact_id=john.id)
    return {"john": john, "jane": jane, "bob": bob, "company": co}

"""The read replica (crm_web/replica.py) against a real streaming replica (tests/replica_support.py).

The app here commits for real (the replica only sees committed data), so it is its own app on a
private primary rather than the suite's rolled-back `app`. Replay is paused on the replica to make it
lag on purpose: a user who wrote must still see their change, a user who did not reads the replica
(which proves it serves reads) until it lags more than the bound, and a stopped replica is skipped.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest
from flask_migrate import upgrade
from sqlalchemy import event

from crm_web import create_app
from crm_web.extensions import db
from crm_web.replica import replica_for
from tests import factories, replica_support
from tests.conftest import MIGRATIONS, CSRFClient, base_config, unavailable

WRITES = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|FOR\s+UPDATE|FOR\s+SHARE)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def pair() -> Iterator[replica_support.ReplicaPair]:
    if not replica_support.available():
        unavailable("PostgreSQL server binaries (pg_basebackup)")
    try:
        started = replica_support.ReplicaPair.start()
    except (RuntimeError, OSError) as error:
        unavailable(f"a private primary and replica ({error})")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def replica_app(pair):
    pair.execute(pair.primary_port, "CREATE DATABASE crm")
    pair.wait_replayed()
    application = create_app(
        {
            **base_config(pair.primary_url("crm")),
            "DATABASE_REPLICA_URL": pair.replica_url("crm"),
            "DATABASE_REPLICA_MAX_LAG_S": 60,
            "DATABASE_REPLICA_RETRY_S": 0.2,
        }
    )
    with application.app_context():
        upgrade(directory=MIGRATIONS)
        org = factories.make_org(f"r{uuid.uuid4().hex[:8]}")
        writer = factories.make_user(org, role="admin")
        reader = factories.make_user(org, role="admin")
        factories.make_contact(org, first_name="Existing", last_name="Person")
        application.config["TEST_USERS"] = {"writer": writer.get_id(), "reader": reader.get_id()}
        db.session.remove()
    pair.wait_replayed()
    yield application
    with application.app_context():
        db.engine.dispose()
        replica = replica_for(application)
        assert replica is not None
        replica.engine.dispose()


@pytest.fixture
def replica(replica_app, pair):
    found = replica_for(replica_app)
    assert found is not None
    found.max_lag_s, found.down_until = 60, 0.0
    yield found
    pair.execute(pair.replica_port, "SELECT pg_wal_replay_resume()")
    pair.wait_replayed()


def signed_in(app, who: str) -> CSRFClient:
    app.test_client_class = CSRFClient
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = app.config["TEST_USERS"][who]
        session["_fresh"] = True
    return client


@pytest.fixture
def replica_statements(replica):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(replica.engine, "before_cursor_execute", record)
    yield seen
    event.remove(replica.engine, "before_cursor_execute", record)


def test_a_writer_sees_their_change_while_others_read_the_lagging_replica(replica_app, pair, replica):
    writer, reader = signed_in(replica_app, "writer"), signed_in(replica_app, "reader")
    pair.execute(pair.replica_port, "SELECT pg_wal_replay_pause()")

    created = writer.post("/contacts", data={"first_name": "Freshly", "last_name": "Saved", "status": "lead"})
    assert created.status_code in (200, 302, 303)
    # Save and reload: the replica has not replayed the write, so the writer reads the primary.
    assert "Freshly" in writer.get("/contacts").get_data(as_text=True)
    # Someone who wrote nothing reads the replica (within the lag bound): the old list.
    stale = reader.get("/contacts").get_data(as_text=True)
    assert "Existing" in stale and "Freshly" not in stale

    # More than the bound behind: skipped for everyone.
    replica.max_lag_s = 0.2
    time.sleep(0.3)
    assert "Freshly" in reader.get("/contacts").get_data(as_text=True)

    # Caught up again: the replica serves the reader, and now has the change.
    pair.execute(pair.replica_port, "SELECT pg_wal_replay_resume()")
    pair.wait_replayed()
    replica.max_lag_s = 60
    assert "Freshly" in reader.get("/contacts").get_data(as_text=True)
    assert "Freshly" in writer.get("/contacts").get_data(as_text=True)


def test_no_write_reaches_the_replica(replica_app, pair, replica, replica_statements):
    client = signed_in(replica_app, "writer")
    pair.wait_replayed()
    for path in ("/contacts", "/", "/deals/board", "/search?q=Existing", "/contacts/export.csv"):
        assert client.get(path).status_code == 200, path
    assert replica_statements, "the read-only pages read from the replica"
    created = client.post("/contacts", data={"first_name": "Written", "last_name": "Once", "status": "lead"})
    assert created.status_code in (200, 302, 303)
    contact_page = client.get("/contacts?q=Written")
    assert "Written" in contact_page.get_data(as_text=True)
    for statement in replica_statements:
        assert re.match(r"\s*(SELECT|WITH)\b", statement, re.IGNORECASE), statement
        assert not WRITES.search(statement), statement


def test_a_stopped_replica_is_skipped(replica_app, pair, replica):
    client = signed_in(replica_app, "reader")
    pair.stop_replica()
    try:
        started = time.monotonic()
        assert "Existing" in client.get("/contacts").get_data(as_text=True)
        assert "Existing" in client.get("/contacts").get_data(as_text=True)
        assert time.monotonic() - started < 5
        assert replica.down_until > time.monotonic() - 1  # remembered: the next request does not try
    finally:
        pair.start_replica()
    time.sleep(replica.retry_s)
    assert "Existing" in client.get("/contacts").get_data(as_text=True)

"""What a serving process does for every request's fixed cost: the garbage collector's frozen objects
(crm_web/__init__.py) and the pool's pre-ping without a round trip (crm_web/database.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

import crm_web
from crm_web import create_app
from crm_web.auth import public
from crm_web.database import ping_only_when_heard, socket_is_quiet
from crm_web.extensions import db
from tests.conftest import base_config


def test_a_serving_process_freezes_again_after_its_first_requests_once_each_response_is_sent(app, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(crm_web.gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(crm_web.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(crm_web, "REFREEZE_AFTER_REQUESTS", (2, 4))
    serving = create_app(base_config(app.config["SQLALCHEMY_DATABASE_URI"]))

    @serving.get("/_test/plain")
    @public
    def plain():
        return "ok"

    crm_web.freeze_startup_objects(serving)
    assert calls == ["collect", "freeze"]  # at start-up
    client = serving.test_client()
    frozen = []
    for _ in range(5):
        response = client.get("/_test/plain")
        assert response.status_code == 200
        before_close = calls.count("freeze")
        response.close()  # the server has sent the response
        frozen.append((before_close, calls.count("freeze")))
    # Requests 2 and 4 freeze again, each after its response (a collection first): not during it.
    assert frozen == [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3)]
    assert calls == ["collect", "freeze"] * 3
    with serving.app_context():
        db.engine.dispose()


def test_freezing_without_an_app_freezes_once(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(crm_web.gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(crm_web.gc, "freeze", lambda: calls.append("freeze"))
    crm_web.freeze_startup_objects()
    assert calls == ["collect", "freeze"]


def _wait_until_heard(dbapi_connection, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while socket_is_quiet(dbapi_connection) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_pre_ping_asks_the_server_only_about_a_connection_it_has_heard_from(app, engine_name):
    if engine_name != "postgresql":
        pytest.skip("SQLite connections are files: the pool does not ping them")
    engine = create_engine(db.engine.url, pool_pre_ping=True, pool_size=1)
    asked: list[object] = []
    ask_server = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: asked.append(connection) or ask_server(connection)  # type: ignore[method-assign]
    ping_only_when_heard(engine)
    admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == pid
                dbapi_connection = conn.connection.dbapi_connection
        assert asked == []  # a quiet socket: the checkouts cost no round trip
        assert socket_is_quiet(dbapi_connection)

        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        _wait_until_heard(dbapi_connection)
        assert not socket_is_quiet(dbapi_connection)  # the server said goodbye and closed it
        with engine.connect() as conn:  # the pre-ping asks, fails, and the pool opens a new connection
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        assert len(asked) == 1
    finally:
        engine.dispose()
        admin.dispose()


def test_a_closed_connection_is_never_quiet(app, engine_name):
    if engine_name != "postgresql":
        pytest.skip("psycopg connections only")
    engine = create_engine(db.engine.url)
    try:
        raw = engine.raw_connection()
        dbapi_connection = raw.dbapi_connection
        assert socket_is_quiet(dbapi_connection)
        dbapi_connection.close()
        assert not socket_is_quiet(dbapi_connection)
        raw.invalidate()
    finally:
        engine.dispose()

"""What a serving process does for every request's fixed cost: the garbage collector's frozen objects
(crm_web/__init__.py) and the pool's pre-ping without a round trip (crm_web/database.py)."""

from __future__ import annotations

import gc
import time

import pytest
from flask import Response
from sqlalchemy import create_engine, text

import crm_web
from crm_web import create_app
from crm_web.auth import public
from crm_web.database import ping_only_when_heard, socket_is_quiet
from crm_web.extensions import db
from tests import factories
from tests.conftest import base_config


def _serving_app(app):
    serving = create_app(base_config(app.config["SQLALCHEMY_DATABASE_URI"]))

    @serving.get("/_test/plain")
    @public
    def plain():
        return f"threshold {gc.get_threshold()[0]}"

    @serving.get("/_test/streamed")
    @public
    def streamed():
        def body():  # runs as the server sends the response, after the request's own work
            yield f"threshold {gc.get_threshold()[0]}"

        return Response(body())

    return serving


def test_a_serving_process_collects_after_each_response_and_freezes_again_after_its_first_requests(app, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(crm_web.gc, "collect", lambda *args: calls.append(f"collect{list(args)}") or 0)
    monkeypatch.setattr(crm_web.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(crm_web, "REFREEZE_AFTER_REQUESTS", (2, 4))
    monkeypatch.setattr(crm_web.gc, "set_threshold", lambda *values: None)  # this test's process keeps its own
    serving = _serving_app(app)
    crm_web.freeze_startup_objects(serving)
    assert calls == ["collect[]", "freeze"]  # at start-up
    client = serving.test_client()
    seen = []
    for _ in range(11):
        calls.clear()
        response = client.get("/_test/plain")
        assert response.status_code == 200
        during = list(calls)
        response.close()  # the server has sent the response
        seen.append((during, calls[len(during) :]))
    assert all(during == [] for during, _ in seen)  # nothing is collected while a request runs
    after = [collected for _, collected in seen]
    # Requests 2 and 4 freeze again (a full collection first); the tenth collects everything, the
    # others the young generations: each once its response has been sent.
    assert after[1] == after[3] == ["collect[]", "freeze"]
    assert after[9] == ["collect[2]"]
    assert all(after[n] == ["collect[1]"] for n in (0, 2, 4, 5, 6, 7, 8, 10))
    with serving.app_context():
        db.engine.dispose()


def test_the_collector_waits_while_a_request_runs_but_not_while_a_response_streams(app):
    normal = gc.get_threshold()
    serving = _serving_app(app)
    try:
        crm_web.freeze_startup_objects(serving)
        client = serving.test_client()
        response = client.get("/_test/plain")
        assert response.text == f"threshold {crm_web.REQUEST_GC_THRESHOLD}"
        response.close()
        assert gc.get_threshold() == normal  # back once the response is sent
        response = client.get("/_test/streamed")
        assert response.text == f"threshold {normal[0]}"
        response.close()
        assert gc.get_threshold() == normal
    finally:
        gc.set_threshold(*normal)
        gc.unfreeze()
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


@pytest.mark.postgres_only  # SQLite connections are files: the pool does not ping them
def test_the_pre_ping_asks_the_server_only_about_a_connection_it_has_heard_from(app):
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


@pytest.mark.postgres_only  # psycopg connections only
def test_a_closed_connection_is_never_quiet(app):
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


# --- a request's cache reads (services/cache.py) -------------------------------------------------------


@pytest.fixture
def cache_calls(monkeypatch):
    """The shared cache's reads, counted: what a request's remembered reads save."""
    from crm_web.extensions import cache

    calls: list[tuple[str, tuple[str, ...]]] = []
    get, get_many = cache.get, cache.get_many
    monkeypatch.setattr(cache, "get", lambda key: calls.append(("get", (key,))) or get(key))
    monkeypatch.setattr(cache, "get_many", lambda *keys: calls.append(("get_many", keys)) or get_many(*keys))
    return calls


def test_a_prefetch_reads_once_and_the_request_writes_keep_it_current(app, cache_calls):
    from crm_web.extensions import cache
    from crm_web.services.cache import cache_add, cache_delete, cache_get, cache_prefetch, cache_set

    cache.set("t:one", 1)
    cache.set("t:two", 2)
    cache.delete("t:missing")
    with app.app_context(), app.test_request_context("/"):  # a request of its own, as served
        cache_prefetch("t:one", "t:two", "t:missing")
        assert cache_calls == [("get_many", ("t:one", "t:two", "t:missing"))]
        assert (cache_get("t:one"), cache_get("t:two"), cache_get("t:missing")) == (1, 2, None)
        assert len(cache_calls) == 1  # answered from the prefetch, a miss included
        cache_set("t:one", 10)
        assert cache_get("t:one") == 10 and cache.get("t:one") == 10
        cache_delete("t:two")
        assert cache_get("t:two") is None
        assert cache_calls[-1] == ("get", ("t:two",))  # forgotten: asked again
        cache.set("t:missing", "someone else's")
        assert not cache_add("t:missing", "mine")
        assert cache_get("t:missing") == "someone else's"  # a lost add forgets the remembered miss
    with app.app_context(), app.test_request_context("/"):
        cache.set("t:one", 100)  # another process's write between two requests
        assert cache_get("t:one") == 100  # nothing is remembered across requests


def test_remembered_reads_are_per_request_and_never_outside_one(app, cache_calls):
    from crm_web.extensions import cache
    from crm_web.services.cache import cache_get, cache_prefetch

    cache.set("t:list", ["a"])
    with app.app_context(), app.test_request_context("/"):
        assert cache_get("t:list", remember=True) == ["a"]
        cache.set("t:list", ["b"])
        assert cache_get("t:list", remember=True) == ["a"]  # one answer for the whole request
        assert cache_get("t:list") == ["a"]
        assert [name for name, _ in cache_calls] == ["get"]
    # A job or a command has an app context but no request: every read asks the cache.
    cache_prefetch("t:list")
    assert cache_get("t:list", remember=True) == ["b"]
    cache.set("t:list", ["c"])
    assert cache_get("t:list", remember=True) == ["c"]


def test_the_dashboard_and_the_board_read_their_cached_entries_in_one_round_trip(client, login, cache_calls):
    factories.make_pipeline(login("admin").org, name="Sales")
    for url in ("/dashboard", "/deals/board"):
        assert client.get(url).status_code == 200  # fills the cache
        cache_calls.clear()
        assert client.get(url).status_code == 200
        singles = [keys for name, keys in cache_calls if name == "get" and ":stats:" in keys[0]]
        pipeline_lists = [keys for name, keys in cache_calls if name == "get" and keys[0].endswith(":list")]
        assert singles == [] and pipeline_lists == [], cache_calls


def test_each_organisation_and_user_sees_its_own_prefetched_numbers(client, login, org, other_org, users):
    from decimal import Decimal

    stage = factories.stages_of(factories.make_pipeline(org, name="Sales"))[0]
    other_stage = factories.stages_of(factories.make_pipeline(other_org, name="Sales"))[0]
    factories.make_deal(org, stage=stage, value=Decimal("1234"), owner_id=users["sales"].id)
    factories.make_deal(other_org, stage=other_stage, value=Decimal("98765"))
    login("admin")
    for _ in range(2):  # the second from the cache
        team = client.get("/dashboard?owner=all").get_data(as_text=True)
        mine = client.get("/dashboard?owner=me").get_data(as_text=True)
        assert "1,234" in team and "98,765" not in team
        assert "1,234" not in mine  # the admin owns none of it
    factories.make_deal(org, stage=stage, value=Decimal("4000"), owner_id=users["admin"].id)
    assert "4,000" in client.get("/dashboard?owner=me").get_data(as_text=True)  # a write is seen at once


def test_custom_filter_and_sort_fields_are_built_once_per_model_and_definition(app):
    from dataclasses import replace

    from crm_web.custom_fields import CustomField, filter_fields, sort_fields
    from crm_web.filters.types import FieldType
    from crm_web.models import Contact, Deal

    size = CustomField(id="a1b2c3", key="size", label="Size", type="number")
    first, again = filter_fields(Contact, [size]), filter_fields(Contact, [size])
    assert first is not again and first["cf_size"] is again["cf_size"]  # a copy of one built mapping
    first.clear()
    assert list(filter_fields(Contact, [size])) == ["cf_size"]  # a caller's change stays its own
    assert sort_fields(Contact, [size])["cf_size"] is sort_fields(Contact, [size])["cf_size"]
    assert filter_fields(Deal, [size])["cf_size"] is not again["cf_size"]  # per model
    renamed = filter_fields(Contact, [replace(size, label="Headcount")])["cf_size"]
    assert renamed.label == "Headcount"
    retyped = filter_fields(Contact, [replace(size, type="text")])["cf_size"]
    assert retyped.type is FieldType.TEXT and again["cf_size"].type is FieldType.NUMBER

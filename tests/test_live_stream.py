"""Live streams (crm_web/live_stream.py): the app served over HTTP from threads, with a Redis of the
test's own, read as a browser's EventSource reads it. A change tells the streams of its organisation
which domain changed, a notification tells its recipient's stream to ask the bell, nothing reaches
another organisation's stream, and Redis going away closes the streams (new ones are refused) until
it is back, when they hear changes again."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import request_started
from werkzeug.serving import make_server

from crm_web.extensions import db
from crm_web.models import User
from crm_web.services.base import Actor
from crm_web.services.deals import DealService
from tests import factories
from tests.conftest import CSRFClient, build_app

HEARTBEAT = 0.2


class Stream:
    """One open `GET /live/stream`: a thread collects its events (name per event) as they arrive."""

    def __init__(self, port: int, cookie: str | None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Accept": "text/event-stream"}
        if cookie:
            headers["Cookie"] = cookie
        self.connection.request("GET", "/live/stream", headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.events: list[str] = []
        self.comments = 0
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read().decode()
            self.ended.set()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    self.events.append(text.removeprefix("event: "))
                elif text.startswith(":"):
                    self.comments += 1
        except OSError:
            pass
        self.ended.set()

    def wait_for(self, event: str, seconds: float = 5.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if event in self.events:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.connection.close()


@contextmanager
def served(application: Any) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def _streaming_app(tmp_path, redis_url: str, **overrides):
    from crm_web.config import cache_settings

    application = build_app(
        f"sqlite:///{tmp_path / 'stream.sqlite3'}",
        REDIS_URL=redis_url,
        LIVE_STREAM=True,
        LIVE_STREAM_HEARTBEAT=HEARTBEAT,
        CACHE_BREAKER_SECONDS=0.2,
        **cache_settings(redis_url),
        **overrides,
    )
    application.test_client_class = CSRFClient
    return application


def _signed_in_cookie(application: Any, user_key: str) -> str:
    """The session cookie a browser holds after opening a page (which records its organisation)."""
    client = application.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_key
        session["_fresh"] = True
    assert client.get("/deals/board").status_code == 200
    name = application.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    assert cookie is not None
    return f"{name}={cookie.value}"


@pytest.fixture
def two_orgs(tmp_path, private_redis):
    application = _streaming_app(tmp_path, private_redis.url)
    with application.app_context():
        ours, theirs = factories.make_org("ours"), factories.make_org("theirs")
        manager = factories.make_user(ours, role="manager")
        rep = factories.make_user(ours, role="sales")
        outsider = factories.make_user(theirs, role="manager")
        stage = factories.stages_of(factories.make_pipeline(ours, is_default=True))[0]
        factories.make_pipeline(theirs, is_default=True)
        ids = {"manager": manager.id, "rep": rep.id, "stage": stage.id}
        keys = {"manager": manager.get_id(), "rep": rep.get_id(), "outsider": outsider.get_id()}
        db.session.remove()
    cookies = {who: _signed_in_cookie(application, key) for who, key in keys.items()}
    yield application, ids, cookies
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _create_deal(application: Any, ids: dict[str, Any], **values: Any) -> None:
    with application.app_context():
        actor = Actor.of(db.session.get(User, ids["manager"]))
        DealService(actor).create(stage_id=ids["stage"], **values)
        db.session.remove()


def test_a_change_reaches_the_streams_of_its_organisation_only(two_orgs):
    application, ids, cookies = two_orgs
    started: list[int] = []
    with (
        served(application) as port,
        request_started.connected_to(lambda sender, **extra: started.append(1), application),
    ):
        streams = {who: Stream(port, cookie) for who, cookie in cookies.items()}
        try:
            assert all(stream.status == 200 for stream in streams.values())
            assert started == []  # answered in front of the app: no Flask request, no user loaded
            _create_deal(application, ids, name="Streamed", owner_id=ids["rep"])
            assert streams["manager"].wait_for("deals")
            assert streams["rep"].wait_for("deals")
            # The deal was handed to the rep by someone else: their bell, and only theirs, is told.
            assert streams["rep"].wait_for("bell")
            time.sleep(4 * HEARTBEAT)  # heartbeats keep coming; nothing else for the others
            assert "bell" not in streams["manager"].events
            assert streams["outsider"].events == []
            assert streams["outsider"].comments >= 2 and not streams["outsider"].ended.is_set()
        finally:
            for stream in streams.values():
                stream.close()


def test_a_stream_needs_a_signed_in_session_and_a_get(two_orgs):
    application, _ids, cookies = two_orgs
    with served(application) as port:
        anonymous = Stream(port, None)
        assert anonymous.status == 401 and "Sign in" in anonymous.body
        forged = Stream(port, cookies["manager"][:-2] + "xx")
        assert forged.status == 401
        for method in ("POST", "HEAD"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request(method, "/live/stream", headers={"Cookie": cookies["manager"]})
            assert connection.getresponse().status == 405, method
            connection.close()


def test_a_stream_ends_after_its_lifetime_and_the_page_says_where_it_is(tmp_path, private_redis):
    application = _streaming_app(tmp_path, private_redis.url, LIVE_STREAM_MAX_SECONDS=0.5)
    with application.app_context():
        org = factories.make_org("short")
        key = factories.make_user(org, role="manager").get_id()
        factories.make_pipeline(org, is_default=True)
        db.session.remove()
    cookie = _signed_in_cookie(application, key)
    client = application.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = key
    assert '<meta name="crm-live-stream" content="/live/stream">' in client.get("/deals/board").get_data(as_text=True)
    with served(application) as port:
        stream = Stream(port, cookie)
        assert stream.status == 200
        assert stream.ended.wait(3)  # the browser reconnects, and the session is checked again


def test_without_redis_pages_poll_and_offer_no_stream(tmp_path):
    application = build_app(f"sqlite:///{tmp_path / 'plain.sqlite3'}", LIVE_STREAM=True)
    assert application.config["LIVE_STREAM"] is False
    application.test_client_class = CSRFClient
    with application.app_context():
        org = factories.make_org("plain")
        key = factories.make_user(org, role="manager").get_id()
        factories.make_pipeline(org, is_default=True)
        db.session.remove()
    client = application.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = key
    html = client.get("/deals/board").get_data(as_text=True)
    assert 'id="live-poll"' in html and "crm-live-stream" not in html
    assert client.get("/live/stream").status_code == 404


def test_redis_going_away_closes_the_streams_and_they_hear_changes_once_it_is_back(two_orgs, private_redis):
    application, ids, cookies = two_orgs
    with served(application) as port:
        stream = Stream(port, cookies["manager"])
        assert stream.status == 200
        private_redis.stop()
        try:
            assert stream.ended.wait(10), "the stream was not closed when Redis went away"
            refused = Stream(port, cookies["manager"])
            assert refused.status == 503  # the page polls meanwhile
            _create_deal(application, ids, name="While away")  # pages keep working
        finally:
            private_redis.start()
        deadline = time.monotonic() + 15
        while True:
            again = Stream(port, cookies["manager"])
            if again.status == 200:
                break
            assert time.monotonic() < deadline, "no stream once Redis was back"
            time.sleep(0.3)
        try:
            time.sleep(0.3)  # the breaker's cool-down before the app writes to Redis again
            _create_deal(application, ids, name="Back again")
            assert again.wait_for("deals")
        finally:
            again.close()
            stream.close()

"""Live streams: server-sent events that tell an open page when to ask (docs/design.md, "Live pages").

`GET /live/stream` holds the connection open and sends an event named after each domain of the
organisation that changed (`deals`, `contacts`, ..., from services/live.py's `publish`), and `bell`
when the signed-in user's bell has something new. Only those names travel: the page then asks
`/live/<domain>` or the bell as it does when it polls, and that answer is rendered for its user as
usual. A page with a stream open asks only when told (and once a minute, its domain and its bell,
in case an event was lost: static/js/live.js's STREAM_SAFETY_MS), so an idle open page sends two
requests a minute and runs no statement.

A WSGI layer in front of the app (create_app installs it when `LIVE_STREAM` is set), served by
processes made to hold many open connections: threads that wait (`gunicorn -k gthread --threads N`,
deploy/cluster.sh, behind nginx's `location = /live/stream`). A process hears every organisation's
changes through one Redis pattern subscription (`Hub`) and hands each event to the streams of that
organisation only: the organisation comes from the signed session cookie, read as IdleChecks reads
it (views/live.py), and nothing of one organisation reaches a stream of another.

Without Redis there is no stream: pages poll (static/js/live.js). When Redis goes away every stream
is closed and new ones are refused (503) until it is back; pages poll meanwhile and open a stream
again later, asking once on opening so nothing that changed in between is missed. A stream ends
after STREAM_MAX_SECONDS (the browser reconnects and the session is checked again).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from flask import Flask

from crm_web.auth import parse_user_id
from crm_web.security import security_headers
from crm_web.services import live

logger = logging.getLogger(__name__)

PATH = "/live/stream"
CLOSED = None  # put on a stream's queue: the hub lost Redis, the stream ends


class Hub:
    """One Redis pattern subscription per process, fanned out to the open streams by organisation and user."""

    def __init__(self, redis_url: str, channel_prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = channel_prefix
        self.lock = threading.Lock()
        self.streams: dict[str, set[queue.SimpleQueue[str | None]]] = {}  # channel name -> queues
        self.up = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """The listening thread, started by the first stream of the process (after gunicorn forks)."""
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._listen, name="live-stream-hub", daemon=True)
                self.thread.start()

    def open(self, names: list[str]) -> queue.SimpleQueue[str | None]:
        events: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        with self.lock:
            for name in names:
                self.streams.setdefault(name, set()).add(events)
        return events

    def close(self, names: list[str], events: queue.SimpleQueue[str | None]) -> None:
        with self.lock:
            for name in names:
                listeners = self.streams.get(name)
                if listeners is not None:
                    listeners.discard(events)
                    if not listeners:
                        del self.streams[name]

    def open_count(self) -> int:
        with self.lock:
            return len({id(events) for listeners in self.streams.values() for events in listeners})

    def _deliver(self, channel: str, message: str) -> None:
        name = channel.removeprefix(self.prefix)
        with self.lock:
            listeners = list(self.streams.get(name, ()))
        for events in listeners:
            events.put(message)

    def _close_all(self) -> None:
        with self.lock:
            listeners = {id(events): events for group in self.streams.values() for events in group}
        for events in listeners.values():
            events.put(CLOSED)

    def _listen(self) -> None:
        retry = 0.5
        while True:
            client = redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=1, socket_keepalive=True, health_check_interval=15
            )
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(f"{self.prefix}live:*")
                self.up.set()
                retry = 0.5
                logger.info("Live streams: listening on Redis.")
                while True:
                    # Wakes at least every few seconds so a Redis that went silent is noticed by its ping.
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        pubsub.check_health()
                        continue
                    if message.get("type") == "pmessage":
                        channel, data = message["channel"], message["data"]
                        self._deliver(
                            channel.decode() if isinstance(channel, bytes) else str(channel),
                            data.decode() if isinstance(data, bytes) else str(data),
                        )
            except redis.RedisError as error:
                if self.up.is_set():
                    logger.warning("Live streams: Redis lost (%s); streams closed, pages poll until it is back.", error)
                self.up.clear()
                self._close_all()
                time.sleep(retry)
                retry = min(retry * 2, 5.0)
            finally:
                client.close()


class LiveStreams:
    """WSGI, in front of the app: `GET /live/stream` for a signed-in session whose organisation is
    recorded (views/live.py); anything else goes on to the app."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]):
        self.app, self.wsgi_app = app, wsgi_app
        self.hub: Hub | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        from crm_web.views.live import recorded_org, signed_session

        if environ.get("REQUEST_METHOD") != "GET":
            return self._refuse(start_response, "405 METHOD NOT ALLOWED", "Streams are read with GET.\n")
        data = signed_session(self.app, environ)
        org = recorded_org(data) if data is not None else None
        parsed = parse_user_id(str((data or {}).get("_user_id") or ""))
        if org is None or parsed is None:
            # Not signed in, or no organisation recorded yet: the page polls, which records it.
            return self._refuse(start_response, "401 UNAUTHORIZED", "Sign in to follow live changes.\n")
        hub = self._hub()
        if not hub.up.wait(timeout=1.0):
            return self._refuse(start_response, "503 SERVICE UNAVAILABLE", "Live changes are paused; pages poll.\n")
        names = [
            live.stream_channel(org),
            live.stream_channel(live.EVERY_ORG),
            live.stream_channel(org, str(parsed[0])),
        ]
        events = hub.open(names)
        headers = [
            *security_headers(self.app.config),
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-store"),
            ("X-Accel-Buffering", "no"),  # nginx passes each event on at once
        ]
        start_response("200 OK", headers)
        return self._events(hub, names, events)

    def _hub(self) -> Hub:
        if self.hub is None:
            from crm_web.services.cache import channel, redis_client

            with self.app.app_context():
                self.hub = Hub(self.app.config["REDIS_URL"], channel(redis_client(), ""))
        self.hub.start()
        return self.hub

    def _events(self, hub: Hub, names: list[str], events: queue.SimpleQueue[str | None]) -> Iterator[bytes]:
        config = self.app.config
        heartbeat, ends = (
            float(config["LIVE_STREAM_HEARTBEAT"]),
            time.monotonic() + float(config["LIVE_STREAM_MAX_SECONDS"]),
        )
        try:
            # The browser's reconnect delay, then a comment that makes proxies and the browser see the stream open.
            yield b"retry: 2000\n: open\n\n"
            while (left := ends - time.monotonic()) > 0:
                try:
                    event = events.get(timeout=min(heartbeat, left))
                except queue.Empty:
                    yield b": \n\n"  # keeps proxies from closing an idle stream; a gone browser ends it here
                    continue
                if event is CLOSED:
                    return
                yield f"event: {event}\ndata: {event}\n\n".encode()
        finally:
            hub.close(names, events)

    def _refuse(self, start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
        headers = [
            *security_headers(self.app.config),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Cache-Control", "no-store"),
        ]
        start_response(status, headers)
        return [text.encode()]

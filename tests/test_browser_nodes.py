"""Real Chromium against two app nodes: two gunicorn processes of the app on their own loopback ports,
sharing one PostgreSQL database, one Redis database and one upload directory, behind a round-robin
proxy in the test that sends each request of the browser to the other node than the one before. So
a form is rendered by one node and posted to the other, a page by one and its htmx fragments and
live polls by both. Signing in, a create through a form (CSRF), an inline htmx edit, a live update
in another browser, the dashboard's cached numbers after a change, the sign-in rate limit and an
import run as a background job all work as on one node (issue 23: "whichever node a request
lands on")."""

from __future__ import annotations

import http.client
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from crm_web.extensions import db
from tests.conftest import TEST_REDIS_URL, build_app, postgres_database, unavailable
from tests.net import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
# Per account: three wrong passwords in a minute, then the sign-in is refused (whichever node counts).
ACCOUNT_LIMIT = "3 per minute"
# Not counted as a request of the session: files the browser caches anyway.
STATIC = re.compile(r"^/(static|favicon)")
# Request headers that belong to one hop, not to the request (RFC 9110 section 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class RoundRobin:
    """A tiny HTTP proxy in front of the nodes. Each request goes to the other node than the request
    before it, except that a POST goes to the other node than the one that rendered the page it was
    sent from (its Referer: the app sends `Referrer-Policy: same-origin`), so every form, CSRF token
    and idempotency key is checked by a node that did not issue it. `log` keeps (method, path, node,
    status, crossed): crossed says a POST reached the other node than its page's."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = itertools.count()
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, int, int, bool]] = []
        self.pages: dict[str, int] = {}  # the node that rendered each full page, by path and query
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def _node(self) -> tuple[int, bool]:
                with proxy.lock:
                    if STATIC.match(self.path):
                        return 0, False
                    turn = next(proxy.turn) % len(proxy.ports)
                    if self.command != "POST":
                        return turn, False
                    referer = urlsplit(self.headers.get("Referer") or "")
                    page = proxy.pages.get(referer.path + (f"?{referer.query}" if referer.query else ""))
                    if page is None:
                        return turn, False
                    return (page + 1) % len(proxy.ports), True

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                node, crossed = self._node()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.ports[node], timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response_only(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    if not STATIC.match(self.path):
                        full_page = (
                            self.command == "GET"
                            and "HX-Request" not in self.headers
                            and (response.getheader("Content-Type") or "").startswith("text/html")
                        )
                        with proxy.lock:
                            if full_page:
                                proxy.pages[self.path] = node
                            proxy.log.append((self.command, self.path, node, response.status, crossed))
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # the browser closing a kept-alive connection, at the end of the test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self, path: str) -> list[bool]:
        """For each POST to a path matching `path` (a regex), whether it crossed to the other node."""
        with self.lock:
            return [crossed for m, p, _, _, crossed in self.log if m == "POST" and re.fullmatch(path, p.split("?")[0])]


def _start_node(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen(
            [
                str(GUNICORN),
                "--chdir",
                str(ROOT),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "wsgi:app",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"node on :{port} exited: {log.read_text()[-2000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise RuntimeError(f"node on :{port} did not answer /healthz: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Two nodes behind the round-robin proxy, on a fresh PostgreSQL database with the demo data."""
    import redis

    from crm_web.services import seeding

    if not GUNICORN.exists():
        unavailable(f"gunicorn at {GUNICORN}")
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=0.5).flushdb()
    except redis.RedisError:
        unavailable(f"Redis at {TEST_REDIS_URL}")
    directory = tmp_path_factory.mktemp("nodes")
    with postgres_database("crm_nodes") as url:
        application = build_app(url)
        with application.app_context():
            org, _ = seeding.ensure_demo_org()
            seeding.Seeder(org, seed=7).run(companies=10, contacts=30, leads=10, deals=20, activities=30)
            db.session.remove()
            db.engine.dispose()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": TEST_REDIS_URL,
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "CRM_ENV": "development",
            "IMPORT_JOBS": "thread",  # each node runs the imports it starts; both read their progress
            "IMPORT_DIR": tempfile.mkdtemp(prefix="crm-nodes-imports-", dir=directory),
            "LOGIN_ACCOUNT_RATE_LIMIT": ACCOUNT_LIMIT,
            "LOGIN_RATE_LIMIT": "1000 per minute",
        }
        env.pop("DATABASE_REPLICA_URL", None)
        ports = [free_port(), free_port()]
        logs = [directory / f"node{n}.log" for n in (1, 2)]
        processes = [_start_node(port, env, log) for port, log in zip(ports, logs, strict=True)]
        proxy = None
        try:
            for port, process, log in zip(ports, processes, logs, strict=True):
                _wait_for(port, process, log)
            proxy = RoundRobin(ports)
            yield proxy
        finally:
            if proxy is not None:
                proxy.stop()
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=0.5).flushdb()


def _sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base) + r"/(my-day)?$"))


def _open_deals(page, base: str) -> str:
    page.goto(f"{base}/dashboard?owner=all")
    return page.locator("#kpis .kpi-sub").first.inner_text()


def test_one_browser_session_alternating_between_two_nodes(browser, nodes, tmp_path):
    base = nodes.url
    errors: list[str] = []
    editor_context, watcher_context = browser.new_context(), browser.new_context()
    try:
        page, watcher = editor_context.new_page(), watcher_context.new_page()
        for each in (page, watcher):
            each.on("pageerror", lambda error: errors.append(str(error)))

        # Signing in: the form (and its CSRF token) from one node, the POST to the other.
        _sign_in(page, base, "admin@example.com")
        _sign_in(watcher, base, "manager@example.com")
        assert nodes.posts("/login") == [True, True], nodes.log

        # A create through the form (CSRF token rendered by one node, checked by the other).
        page.goto(f"{base}/contacts/new")
        name = f"Nodes{uuid.uuid4().hex[:6]}"
        page.fill("input[name=first_name]", name)
        page.fill("input[name=last_name]", "Alternating")
        page.locator("#contact-form button[type=submit]").click()
        page.wait_for_url(re.compile(re.escape(base) + r"/contacts/[0-9a-f-]{36}$"))
        contact_url = page.url
        expect(page.locator("h1")).to_contain_text(name)

        # The other browser follows the record live while this one edits a field inline (htmx).
        watcher.goto(contact_url)
        expect(watcher.locator("h1")).to_contain_text(name)
        page.reload()
        page.locator("#field-title button.inline-edit").click()
        page.fill("#field-title input[name=title]", "Head of nodes")
        page.locator("#field-title").get_by_role("button", name="Save").click()
        expect(page.locator("#field-title button.inline-edit")).to_contain_text("Head of nodes")
        expect(watcher.locator("#field-title")).to_contain_text("Head of nodes", timeout=10_000)
        page.reload()  # whichever node renders it now
        expect(page.locator("#field-title")).to_contain_text("Head of nodes")

        # Cached numbers: both nodes have served the dashboard; a deal deleted through one node is
        # gone from the numbers either node serves next.
        before = _open_deals(page, base)
        assert _open_deals(page, base) == before
        count = int(before.split()[0])
        page.goto(f"{base}/deals/board")
        card = page.locator(".board-column:not([data-stage-won]):not([data-stage-lost]) [data-deal-id]").first
        deal_name = card.get_attribute("aria-label")
        card.get_by_role("button", name=f"Delete {deal_name}").click()
        expect(page.locator(".toast", has_text="Deleted 1 deal.")).to_be_visible()
        for _ in range(2):
            assert _open_deals(page, base).startswith(f"{count - 1} open deal"), before

        # The per-account sign-in limit counts the failures of both nodes together.
        stranger = browser.new_context().new_page()
        statuses = []
        for _ in range(4):
            stranger.goto(f"{base}/login")
            stranger.fill("input[name=email]", "sales@example.com")
            stranger.fill("input[name=password]", "wrong")
            with stranger.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as sent:
                stranger.click("button[type=submit]")
            statuses.append(sent.value.status)
        stranger.context.close()
        assert statuses == [422, 422, 422, 429], statuses

        # An import: uploaded through one node, mapped, previewed and started through the others,
        # run as a background job, its progress polled from both.
        csv = tmp_path / "nodes.csv"
        csv.write_text("First name,Last name,Email\nAda,Imported,ada@nodes.example\nBo,Imported,bo@nodes.example\n")
        page.goto(f"{base}/import")
        page.select_option("select[name=entity]", "contacts")
        page.set_input_files("input[name=file]", str(csv))
        page.get_by_role("button", name="Upload and map columns").click()
        expect(page.locator("h1")).to_contain_text("nodes.csv")
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("#import-counts")).to_contain_text("Will create 2")
        page.get_by_role("button", name="Import 2 rows").click()
        expect(page.locator("#import-status")).to_contain_text("100 %", timeout=30_000)
        page.goto(f"{base}/contacts?q=Imported")
        expect(page.locator("#contact-table")).to_contain_text("Ada")

        assert errors == []
        # Every form was posted to the other node than the one that rendered its page.
        assert nodes.posts("/contacts") == [True], nodes.log
        assert nodes.posts(r"/contacts/[0-9a-f-]{36}/fields/title") == [True], nodes.log
        assert nodes.posts(r"/deals/board/delete") == [True], nodes.log
        assert nodes.posts(r"/import(/[0-9a-f-]{36})?") == [True, True, True], nodes.log
        assert nodes.posts("/login") == [True] * 6, nodes.log
        served = Counter(node for _, _, node, _, _ in nodes.log)
        assert served[0] > 20 and served[1] > 20, served
        assert {status for _, _, _, status, _ in nodes.log} <= {200, 204, 286, 302, 303, 422, 429}, nodes.log
    finally:
        editor_context.close()
        watcher_context.close()

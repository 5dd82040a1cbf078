"""`make load`: gunicorn (several workers, PostgreSQL + Redis) on 127.0.0.1, a 60 s locust run
against it, and a streamed CSV export of every contact, sampling each worker's RSS throughout.

Loopback only, bounded in time (locust --run-time, request timeouts), and it stops what it started.
Uses the L benchmark database (`make bench BENCH_ARGS="--sizes L"` creates it), served as the plain
web role (`flask crm web-role`, made here as the owner), so row-level security is in every number.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def workers_of(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Sampler(threading.Thread):
    """Peak RSS per worker pid, sampled every 0.2 s, within named phases."""

    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master, self.phase, self.peaks, self.stop = master, "start", {}, threading.Event()

    def run(self):
        while not self.stop.is_set():
            for pid in workers_of(self.master):
                key = (self.phase, pid)
                self.peaks[key] = max(self.peaks.get(key, 0.0), rss_mb(pid))
            time.sleep(0.2)

    def peak(self, phase: str) -> tuple[float, int]:
        values = {pid: mb for (p, pid), mb in self.peaks.items() if p == phase}
        return (max(values.values()) if values else 0.0), len(values)


@contextmanager
def serve(
    database_url: str,
    redis_url: str | None,
    *,
    workers: int = 4,
    threads: int = 1,
    timeout: int = 300,
    secret_key: str | None = None,
) -> Iterator[tuple[subprocess.Popen, str]]:
    """The README's production command (gunicorn, CRM_ENV=production) on loopback and a free port, as
    the plain web role made from the owner's `database_url`, with Redis at `redis_url` (None: each
    worker's own in-process cache). Yields the server and its base URL once /healthz answers; stops
    the server and its workers (its process group) on leaving. `secret_key` (default: a random one)
    when the client brings what the app signed elsewhere (bench/run.py's list cursors)."""
    import requests

    from bench.run import web_role_url

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        {
            "CRM_ENV": "production",
            "CRM_ALLOW_PLAIN_HTTP": "true",  # loopback without TLS: cookies without Secure, no HSTS
            "SECRET_KEY": secret_key or os.urandom(32).hex(),
            "DATABASE_URL": web_role_url(database_url),
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            str(timeout),
            # Several servers may run at once here (one per bench); each would take over the same
            # default control socket in the home directory, and remove it when it stops.
            "--no-control-socket",
            # The README's command logs every request (`--access-logfile -`): the server formats and
            # writes each line here too, into nothing, rather than into the bench's own output.
            "--access-logfile",
            os.devnull,
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        for _ in range(150):
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}")
            try:
                if requests.get(host + "/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not answer /healthz within 30 s")
        yield server, host
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def sign_in(session: Any, host: str, email: str, password: str) -> None:
    """Sign in over HTTP as the login form does (its CSRF token, then the post): `session` keeps the cookie."""
    login = session.get(host + "/login", timeout=10)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login.text)
    if match is None:
        raise RuntimeError(f"no CSRF token on {host}/login (HTTP {login.status_code})")
    response = session.post(
        host + "/login", data={"csrf_token": match.group(1), "email": email, "password": password}, timeout=10
    )
    if response.status_code >= 400 or "/login" in response.url:
        raise RuntimeError(f"signing in as {email} failed (HTTP {response.status_code})")


class BareClient:
    """GETs over `http.client`, a connection each (the sync worker closes every one), carrying the
    cookies of a signed-in `requests.Session` and those the server sets later. Timing with it leaves
    out `requests`' own work before it connects and while it reads (proxy settings, the cookie jar,
    header and cookie parsing), which is the client's time, not the server's."""

    def __init__(self, host: str, cookies: dict[str, str]):
        self.netloc = urlsplit(host).netloc
        self.cookies = dict(cookies)

    def get(self, path: str, headers: dict[str, str], timeout: float = 60) -> tuple[int, str]:
        connection = http.client.HTTPConnection(self.netloc, timeout=timeout)
        try:
            cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
            connection.request("GET", path, headers={**headers, "Cookie": cookie})
            response = connection.getresponse()
            body = response.read().decode()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, body
        finally:
            connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/crm_bench_l",
        help="the owner's (or a superuser's) URL: the server itself connects as the web role made from it",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (>1: the gthread worker)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument("--run-time", default="60s")
    parser.add_argument(
        "--timeout",
        type=int,
        default=300,
        help="gunicorn worker timeout: the 100k-contact export streams for longer than the default 30 s",
    )
    args = parser.parse_args(argv)
    with serve(args.database_url, args.redis_url, workers=args.workers, threads=args.threads, timeout=args.timeout) as (
        server,
        host,
    ):
        return _run(args, server, host)


def _run(args: argparse.Namespace, server: subprocess.Popen, host: str) -> int:
    import requests

    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    sampler = Sampler(server.pid)
    sampler.start()
    time.sleep(1)
    sampler.phase = "idle"
    time.sleep(2)
    sampler.phase = "load"
    started = time.time()
    subprocess.run(
        [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--host",
            host,
            "-u",
            str(args.users),
            "-r",
            str(args.spawn_rate),
            "--run-time",
            args.run_time,
            "--stop-timeout",
            "10",
            "--csv",
            str(out / "load"),
            "--only-summary",
        ],
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    load_seconds = time.time() - started
    sampler.phase = "export"
    session = requests.Session()
    sign_in(session, host, "admin-l@bench.example", "bench-password")
    started = time.time()
    size = lines = 0
    export_error = ""
    try:
        with session.get(host + "/contacts/export.csv", stream=True, timeout=args.timeout) as response:
            response.raise_for_status()
            for chunk in response.iter_content(65536):
                size += len(chunk)
                lines += chunk.count(b"\n")
    except requests.RequestException as error:
        export_error = f" (FAILED: {type(error).__name__})"
    export_seconds = time.time() - started
    time.sleep(0.5)
    sampler.stop.set()
    sampler.join()
    idle, n = sampler.peak("idle")
    load, n_load = sampler.peak("load")
    export, _ = sampler.peak("export")
    with open(out / "load_stats.csv") as f:
        rows = list(csv.DictReader(f))
    print("\n| request | count | failures | median ms | p95 ms | p99 ms | max ms | req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['Name']} | {r['Request Count']} | {r['Failure Count']} | {r['50%']} | {r['95%']} | "
            f"{r['99%']} | {float(r['Max Response Time']):.0f} | {float(r['Requests/s']):.1f} |"
        )
    print(
        f"\nload phase {load_seconds:.0f} s; {n} workers; peak worker RSS: idle {idle:.0f} MB, "
        f"during load {load:.0f} MB (over {n_load} worker pids), during the export {export:.0f} MB"
    )
    print(f"export: {lines - 1:,} contacts, {size / 1e6:.1f} MB in {export_seconds:.1f} s{export_error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make load CLUSTER=1`: a fault load test through nginx against `make cluster`'s stack.

Signed-in users (threads, plain HTTP on loopback) browse the read-only pages and create contacts
through nginx while, on a fixed schedule, one app node is killed (SIGKILL, master and workers) and
later started again, PgBouncer is restarted, and Redis is killed and later started again. Every
request's time and outcome is kept; the report gives requests, failures and p95 per phase, and
checks each create against the database afterwards: a POST that succeeded must have made exactly
one contact, one that failed none or one (committed, but its user saw an error), never two.
Only 127.0.0.1 is ever contacted; the run stops by itself.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR", "/tmp/crm-cluster"))
LB = f"http://127.0.0.1:{os.environ.get('LB_PORT', '58080')}"
PG_PRIMARY_PORT = os.environ.get("PG_PRIMARY_PORT", "55432")
REDIS_PORT = os.environ.get("REDIS_PORT", "56379")
PAGES = ["/", "/contacts", "/companies", "/deals", "/deals/board", "/leads", "/activities", "/search?q=an"]
THINK_SECONDS = 0.1  # between one user's requests: a bounded load, also while requests fail fast
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|name="csrf-token" content="([^"]+)"')


@dataclass
class Sample:
    at: float
    method: str
    status: int  # 0: no response
    ms: float
    name: str = ""


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    if not found:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1) or found.group(2)


def _pids(pidfile: Path) -> list[int]:
    """A gunicorn master (from its pid file) and its workers."""
    master = int(pidfile.read_text().split()[0])
    children = Path(f"/proc/{master}/task/{master}/children")
    return [master, *(int(p) for p in children.read_text().split())] if children.exists() else [master]


def _cluster(*args: str) -> None:
    subprocess.run(["bash", str(ROOT / "deploy" / "cluster.sh"), *args], check=True, capture_output=True)


class Faults:
    """The schedule: (seconds from the start, phase name, action)."""

    def __init__(self) -> None:
        self.phase = "steady"
        self.log: list[tuple[float, str]] = []

    def kill_node(self) -> None:
        for pid in _pids(CLUSTER_DIR / "node1.pid"):
            os.kill(pid, signal.SIGKILL)
        (CLUSTER_DIR / "node1.pid").unlink(missing_ok=True)

    def start_node(self) -> None:
        _cluster("start-node", "1")

    def restart_pgbouncer(self) -> None:
        """An immediate shutdown (SIGTERM: every client connection cut), then a start."""
        pidfile = CLUSTER_DIR / "pgbouncer" / "pgbouncer.pid"
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
        pidfile.unlink(missing_ok=True)
        _cluster("start-pgbouncer")

    def kill_redis(self) -> None:
        pid = int((CLUSTER_DIR / "redis.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        (CLUSTER_DIR / "redis.pid").unlink(missing_ok=True)

    def start_redis(self) -> None:
        _cluster("start-redis")

    def schedule(self, duration: float) -> list[tuple[float, str, object]]:
        step = duration / 7
        return [
            (1 * step, "node 1 killed", self.kill_node),
            (2 * step, "node 1 back", self.start_node),
            (3 * step, "PgBouncer restarted", self.restart_pgbouncer),
            (4 * step, "Redis killed", self.kill_redis),
            (5 * step, "Redis back", self.start_redis),
        ]


def user(samples: list[Sample], stop: threading.Event, faults: Faults, writes: float, seed: int) -> None:
    session = requests.Session()
    login = session.get(f"{LB}/login", timeout=10)
    session.post(
        f"{LB}/login",
        data={"email": "admin@example.com", "password": "demo", "csrf_token": _csrf(login.text)},
        timeout=10,
    )
    token = _csrf(session.get(f"{LB}/contacts/new", timeout=10).text)
    n = seed
    while not stop.is_set():
        n += 1
        write = (n % 100) < writes * 100
        name = ""
        started = time.perf_counter()
        try:
            if write:
                name = f"Load{uuid.uuid4().hex[:12]}"
                response = session.post(
                    f"{LB}/contacts",
                    data={"first_name": name, "last_name": "Fault", "status": "lead", "csrf_token": token},
                    timeout=15,
                    allow_redirects=False,
                )
            else:
                response = session.get(LB + PAGES[n % len(PAGES)], timeout=15)
            status = response.status_code
        except requests.RequestException:
            status = 0
        samples.append(
            Sample(time.time(), "POST" if write else "GET", status, (time.perf_counter() - started) * 1000, name)
        )


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=105)
    parser.add_argument("--writes", type=float, default=0.1, help="share of requests that create a contact")
    args = parser.parse_args(argv)
    if requests.get(f"{LB}/healthz", timeout=5).status_code != 200:
        raise SystemExit(f"no cluster at {LB}: run `make cluster` first")

    faults = Faults()
    samples: list[Sample] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=user, args=(samples, stop, faults, args.writes, i * 1000), daemon=True)
        for i in range(args.users)
    ]
    started = time.time()
    for thread in threads:
        thread.start()
    phases: list[tuple[float, str]] = [(started, "steady")]
    for offset, phase, action in faults.schedule(args.seconds):
        time.sleep(max(0.0, started + offset - time.time()))
        at = time.time()
        action()  # type: ignore[operator]
        phases.append((at, phase))
        print(f"{at - started:6.1f} s  {phase}")
    time.sleep(max(0.0, started + args.seconds - time.time()))
    stop.set()
    for thread in threads:
        thread.join(timeout=20)

    # Each create, checked against the primary.
    names = [s for s in samples if s.method == "POST"]
    with psycopg.connect(f"host=127.0.0.1 port={PG_PRIMARY_PORT} user=postgres dbname=crm") as conn:
        rows = dict(
            conn.execute(
                "SELECT first_name, count(*) FROM contacts WHERE first_name = ANY(%s) GROUP BY first_name",
                ([s.name for s in names],),
            ).fetchall()
        )
    ok_posts = [s for s in names if s.status in (200, 302, 303)]
    lost = [s for s in ok_posts if rows.get(s.name, 0) == 0]
    doubled = [s for s in names if rows.get(s.name, 0) > 1]
    failed_posts = [s for s in names if s.status not in (200, 302, 303)]
    committed_anyway = [s for s in failed_posts if rows.get(s.name, 0) == 1]

    lines = ["| phase | from s | requests | failed GET | failed POST | p95 ms | p95 ms, last 10 s of the phase |"]
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    bounds = [*phases, (started + args.seconds, "end")]
    for (begin, phase), (end, _) in itertools.pairwise(bounds):
        chunk = [s for s in samples if begin <= s.at < end]
        tail = [s.ms for s in chunk if s.at >= end - 10]
        bad_get = sum(1 for s in chunk if s.method == "GET" and s.status != 200)
        bad_post = sum(1 for s in chunk if s.method == "POST" and s.status not in (200, 302, 303))
        lines.append(
            f"| {phase} | {begin - started:.0f} | {len(chunk)} | {bad_get} | {bad_post} | "
            f"{p95([s.ms for s in chunk]):.0f} | {p95(tail):.0f} |"
        )
    statuses: dict[str, int] = {}
    for s in samples:
        if s.status not in (200, 302, 303):
            key = f"{s.method} {s.status or 'no response'}"
            statuses[key] = statuses.get(key, 0) + 1
    print("\n".join(lines))
    print(
        f"\n{len(samples)} requests, {len(names)} creates: {len(ok_posts)} succeeded, {len(lost)} of them lost, "
        f"{len(doubled)} doubled; {len(failed_posts)} failed visibly ({len(committed_anyway)} of those committed)."
    )
    print("failures by kind: " + (", ".join(f"{k} x{v}" for k, v in sorted(statuses.items())) or "none"))
    return 1 if lost or doubled else 0


if __name__ == "__main__":
    raise SystemExit(main())

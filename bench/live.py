"""`python -m bench.live`: what open boards cost. gunicorn (PostgreSQL + Redis, as in production) on
127.0.0.1 with the demo data; N boards asking as static/js/live.js does (threads in a process of
their own, one cookie session each: the board's deals every 2 s and its header's bell every 5 s);
phases of a fixed length:

1. pages: a few clients reading other pages (board, lists, dashboard) alone: their latency;
2. idle: the boards alone, nothing changing: requests per second, the server's CPU, and the reads
   of the app's tables (0: an idle poll touches no database);
3. pages + idle boards: the same page clients with the boards open: their latency again;
4. changing: the boards while a deal moves every few seconds: each move re-renders every open board;
5. rounds: the page clients again without, then with the idle boards (`--rounds`), since the
   machine's own speed drifts over minutes by as much as the boards might cost: all rounds' pages
   with the boards open against all without.

`--stream`: the boards listen on live streams (crm_web/live_stream.py, served by a gunicorn gthread
process of its own, as deploy/cluster.sh does) and ask only when told, as static/js/live.js does when
the server offers a stream (and every 60 s). `--think`: the page clients wait 0.5-2 s between pages
as the load test's users do (bench/locustfile.py), instead of reading back to back.

Loopback only, bounded in time; it stops what it started and drops its database.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATABASE = "crm_bench_live"
POLL_SECONDS = 2.0  # static/js/live.js's POLL_MS
BELL_SECONDS = 5.0  # and BELL_MS
STREAM_SAFETY_SECONDS = 60.0  # static/js/live.js's STREAM_SAFETY_MS
STREAM_READ_TIMEOUT = 40.0  # seconds; the server sends a heartbeat every LIVE_STREAM_HEARTBEAT (15)
THINK_SECONDS = (0.5, 2.0)  # bench/locustfile.py's wait_time
STATS_FLUSH = 25  # seconds: idle PostgreSQL backends report their statistics late
PAGES = ["/deals/board", "/contacts", "/deals", "/activities", "/"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes so far (clock ticks from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the processes (VmRSS from /proc)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total / 1024


def server_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [master, *(int(p) for p in out.split())]


def prepare(admin_url: str) -> str:
    """A fresh database with the schema and the demo organisation; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(admin_url)
    with psycopg.connect(base.set(drivername="postgresql", database="postgres").render_as_string(False)) as conn:
        conn.autocommit = True
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    url = base.set(database=DATABASE).render_as_string(False)
    from flask_migrate import upgrade

    from crm_web import create_app
    from crm_web.extensions import db
    from crm_web.services import seeding

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "CACHE_TYPE": "NullCache"})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        org, _ = seeding.ensure_demo_org()
        seeding.Seeder(org, seed=7).run(companies=50, contacts=300, leads=50, deals=200, activities=300)
        db.session.remove()
        db.engine.dispose()
    # Statistics and visibility maps now, so that autovacuum does not run in the measured phases
    # (its transactions count in the database's, which tell whether polls reach the database).
    with psycopg.connect(base.set(drivername="postgresql", database=DATABASE).render_as_string(False)) as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return url


def drop(admin_url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(admin_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(base.render_as_string(False)) as conn:
        conn.autocommit = True
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def transactions(admin_url: str) -> int:
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(admin_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(base.render_as_string(False)) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
    return int(row[0]) if row else 0


def table_reads(admin_url: str) -> int:
    """Index and sequential scans of the app's tables so far: any statement of a request reads one;
    autovacuum and statistics work (which also count as database transactions) do not."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(admin_url).set(drivername="postgresql", database=DATABASE)
    with psycopg.connect(base.render_as_string(False)) as conn:
        row = conn.execute(
            "SELECT sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)) FROM pg_stat_user_tables"
        ).fetchone()
    return int(row[0] or 0)


def sign_in(host: str, email: str):
    import requests

    session = requests.Session()
    page = session.get(host + "/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    session.post(host + "/login", data={"csrf_token": token, "email": email, "password": "demo"}, timeout=10)
    return session


OUTCOMES = ("204", "200", "error")


class Board(threading.Thread):
    """One open board, asking as static/js/live.js does: its deals (the stamp it holds) every
    POLL_SECONDS and its header's bell every BELL_SECONDS; or, on a live stream, each when told and
    every STREAM_SAFETY_SECONDS."""

    def __init__(self, host: str, cookies, stop, counters, ready, lag, stream_port: int | None = None):
        super().__init__(daemon=True)
        self.host, self.cookies, self.stop, self.counters, self.ready = host, cookies, stop, counters, ready
        self.lag = lag  # [time of the last move, longest wait of a board for a move's update]
        self.stream_port = stream_port  # listen on a live stream and ask when told, instead of polling

    def run(self) -> None:
        import requests

        session = requests.Session()
        # A browser opens a new connection when the server closed an idle keep-alive one; so does this.
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=1))
        session.cookies.update(self.cookies)
        html = session.get(self.host + "/deals/board", timeout=30).text
        stamp = re.search(r'data-live-stamp="([^"]*)"', html).group(1)
        query = re.search(r'data-board-query="([^"]*)"', html).group(1).replace("&amp;", "&")
        # Pages open at different moments (streams too: their heartbeats then fall at different moments).
        self.stop.wait(random.uniform(0, POLL_SECONDS if self.stream_port is None else 15.0))
        self.stamp, self.bell_stamp, self.first = stamp, "", True

        def count(outcome: int) -> None:
            with self.counters.get_lock():
                self.counters[outcome] += 1

        def outcome_of(response) -> int:
            return OUTCOMES.index(str(response.status_code)) if str(response.status_code) in OUTCOMES else 2

        def ask() -> None:
            try:
                response = session.get(
                    f"{self.host}/live/deals?s={self.stamp}&n=0&board=1&{query}",
                    headers={"HX-Request": "true"},
                    timeout=30,
                )
                self.stamp = response.headers.get("X-Live-Stamp", self.stamp)
                outcome = outcome_of(response)
            except requests.RequestException:
                outcome = 2
            count(outcome)
            if outcome == 1:  # an update: how long after the move it reached this board
                with self.lag.get_lock():
                    self.lag[1] = max(self.lag[1], time.time() - self.lag[0])

        def ask_bell() -> None:
            try:
                response = session.get(
                    f"{self.host}/notifications/bell?s={self.bell_stamp}", headers={"HX-Request": "true"}, timeout=30
                )
                if response.status_code == 200:
                    found = re.search(r'data-bell-stamp="([^"]*)"', response.text)
                    self.bell_stamp = found.group(1) if found else self.bell_stamp
                outcome = outcome_of(response)
            except requests.RequestException:
                outcome = 2
            count(outcome)
            if self.first:  # the board is open: its page, its first poll and bell (full answers) are done
                self.first = False
                with self.ready.get_lock():
                    self.ready.value += 1

        if self.stream_port is not None:
            self.listen(ask, ask_bell, session)
            return
        bell_due = 0.0
        while not self.stop.is_set():
            ask()
            if time.monotonic() >= bell_due:
                ask_bell()
                bell_due = time.monotonic() + BELL_SECONDS
            self.stop.wait(POLL_SECONDS)

    def listen(self, ask, ask_bell, session) -> None:
        """As live.js with a stream: ask on opening, then when told that deals changed or the bell has news
        (and every STREAM_SAFETY_SECONDS); a stream that ends is opened again."""
        cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        opening = True
        while not self.stop.is_set():
            # Longer than the server's heartbeat: a socket that times out cannot be read again (the stream
            # would be opened anew, and asked, every few seconds); the heartbeat wakes it to see the stop flag.
            connection = http.client.HTTPConnection("127.0.0.1", self.stream_port, timeout=STREAM_READ_TIMEOUT)
            try:
                connection.request("GET", "/live/stream", headers={"Cookie": cookie, "Accept": "text/event-stream"})
                response = connection.getresponse()
                if response.status != 200:
                    response.read()
                    ask()
                    ask_bell()
                    self.stop.wait(POLL_SECONDS)
                    continue
                ask()
                ask_bell()
                # Pages opened at different moments ask their safety question at different moments too.
                asked = time.monotonic() - (random.uniform(0, STREAM_SAFETY_SECONDS) if opening else 0)
                opening = False
                while not self.stop.is_set():
                    line = response.readline()
                    if not line:
                        break  # the stream ended (its lifetime): open it again
                    if line == b"event: deals\n":
                        ask()
                    elif line == b"event: bell\n":
                        ask_bell()
                    elif time.monotonic() - asked > STREAM_SAFETY_SECONDS:
                        ask()
                        ask_bell()
                        asked = time.monotonic()
            except OSError:
                self.stop.wait(1)
            finally:
                connection.close()


def run_boards(host: str, people: list, count: int, stop, counters, ready, lag, stream_port=None) -> None:
    """The boards, in a process of their own. They stand for browsers on other machines: on these shared
    cores they yield the CPU to the server and the readers (the polls per second show they keep pace)."""
    os.nice(10)
    boards = [Board(host, people[i % len(people)], stop, counters, ready, lag, stream_port) for i in range(count)]
    for board in boards:
        board.start()
    stop.wait()
    for board in boards:
        board.join(timeout=35)


class Reader(threading.Thread):
    """A user reading other pages, back to back or with the load test's think time between them
    (bench/locustfile.py): their latencies."""

    def __init__(self, host: str, cookies, stop: threading.Event, times: list[float], think: bool = False):
        super().__init__(daemon=True)
        self.host, self.cookies, self.stop, self.times, self.think = host, cookies, stop, times, think

    def run(self) -> None:
        import requests

        session = requests.Session()
        session.cookies.update(self.cookies)
        # A connection of its own per page: a kept-alive one stays with the gunicorn worker that took it,
        # so both readers on one worker (one GIL) for a whole phase made some phases twice as slow as others.
        session.headers["Connection"] = "close"
        while not self.stop.is_set():
            started = time.perf_counter()
            session.get(self.host + random.choice(PAGES), timeout=30)
            self.times.append((time.perf_counter() - started) * 1000)
            if self.think:
                self.stop.wait(random.uniform(*THINK_SECONDS))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--boards", type=int, default=200)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    # A browser's connection ends at the proxy in front (nginx keeps it 75 s), not at gunicorn; with
    # gunicorn's own 2 s default every board's connection closed just before its next poll (and at 5 s,
    # the mover's before its next move, every 5 s).
    parser.add_argument("--keep-alive", type=int, default=10, help="gunicorn's keep-alive seconds")
    parser.add_argument("--seconds", type=int, default=30, help="length of each phase")
    parser.add_argument(
        "--rounds", type=int, default=3, help="times the readers are timed with the idle boards open (and closed)"
    )
    parser.add_argument(
        "--think",
        action="store_true",
        help="the readers wait 0.5-2 s between pages, as the load test's users do (else back to back)",
    )
    parser.add_argument("--stream", action="store_true", help="the boards listen on live streams instead of polling")
    args = parser.parse_args(argv)
    import requests

    from bench.run import web_role_url

    url = web_role_url(prepare(args.database_url))  # served as the plain web role, as in production
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CRM_ENV": "production",
        "CRM_ALLOW_PLAIN_HTTP": "true",
        "SECRET_KEY": os.urandom(32).hex(),
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "RATELIMIT_STORAGE_URI": "memory://",
        "LIVE_STREAM": "1" if args.stream else "",
    }
    stream_port = free_port() if args.stream else None
    streams = (
        subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                str(args.boards + 20),
                "--bind",
                f"127.0.0.1:{stream_port}",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        if args.stream
        else None
    )
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--keep-alive",
            str(args.keep_alive),
            "--bind",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    results: list[str] = []
    try:
        for _ in range(150):
            try:
                if requests.get(host + "/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        people = [sign_in(host, f"{role}@example.com").cookies for role in ("admin", "manager", "sales")]
        pids = server_pids(server.pid) + (server_pids(streams.pid) if streams else [])

        def readers_phase(label: str) -> list[float]:
            stop, times = threading.Event(), []
            threads = [Reader(host, people[i % 3], stop, times, args.think) for i in range(args.readers)]
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            results.append(
                f"| {label} | {len(times)} pages | p50 {percentile(times, 0.5):.0f} ms | "
                f"p95 {percentile(times, 0.95):.0f} ms |"
            )
            return times

        readers_phase("warm-up (not counted)")
        results.pop()
        alone = readers_phase(f"pages, {args.readers} readers, no board open")
        time.sleep(STATS_FLUSH)
        reads, xacts, started = table_reads(args.database_url), transactions(args.database_url), time.time()
        cpu = cpu_seconds(pids)
        time.sleep(args.seconds)
        cpu = cpu_seconds(pids) - cpu
        idle_cpu = f"server CPU {100 * cpu / args.seconds:.1f} % of one core"
        time.sleep(STATS_FLUSH)
        results.append(
            f"| nothing open | | {idle_cpu} | {table_reads(args.database_url) - reads} table reads; "
            f"{transactions(args.database_url) - xacts} database transactions (autovacuum) in "
            f"{time.time() - started:.0f} s |"
        )

        context = multiprocessing.get_context("fork")
        counters, lag = context.Array("i", 3), context.Array("d", [time.time(), 0.0])

        def open_boards():
            """The boards' process, once every board is past its first poll (its page and first answer)."""
            stop, ready = context.Event(), context.Value("i", 0)
            process = context.Process(
                target=run_boards,
                args=(host, people, args.boards, stop, counters, ready, lag, stream_port),
            )
            process.start()
            deadline = time.time() + 300
            while ready.value < args.boards and time.time() < deadline:
                time.sleep(0.5)
            return process, stop

        def close_boards(boards) -> None:
            process, stop = boards
            stop.set()
            process.join(timeout=60)
            if process.is_alive():
                process.kill()

        def polls() -> dict[str, int]:
            with counters.get_lock():
                return dict(zip(OUTCOMES, counters[:], strict=True))

        def clear() -> None:
            with counters.get_lock():
                counters[:] = [0, 0, 0]

        boards = open_boards()
        time.sleep(STATS_FLUSH)  # what the first polls read is counted before the phase
        reads, xacts = table_reads(args.database_url), transactions(args.database_url)
        clear()
        stream_pids = server_pids(streams.pid) if streams else []
        cpu, stream_cpu, started = cpu_seconds(pids), cpu_seconds(stream_pids), time.time()
        time.sleep(args.seconds)
        elapsed = time.time() - started
        cpu, stream_cpu = cpu_seconds(pids) - cpu, cpu_seconds(stream_pids) - stream_cpu
        idle_polls = polls()
        time.sleep(STATS_FLUSH)  # the boards go on polling: anything they read would show
        reads = table_reads(args.database_url) - reads
        xacts = transactions(args.database_url) - xacts
        total = sum(idle_polls.values())
        results.append(
            f"| {args.boards} idle boards | {total / elapsed:.0f} polls/s ({idle_polls}) | server CPU "
            f"{100 * cpu / elapsed:.1f} % of one core | {reads} table reads; {xacts} database transactions |"
        )
        if streams is not None:
            memory = rss_mb(server_pids(streams.pid))
            results.append(
                f"| (the stream process, {args.boards} streams open) | | {100 * stream_cpu / elapsed:.1f} % of one "
                f"core of it; {memory:.0f} MB resident | |"
            )

        clear()
        started, client_cpu = time.time(), cpu_seconds([boards[0].pid])
        opened = readers_phase(f"pages, {args.readers} readers, {args.boards} idle boards open")
        elapsed, client_cpu = time.time() - started, cpu_seconds([boards[0].pid]) - client_cpu
        results.append(
            f"| (the boards meanwhile) | {sum(polls().values()) / elapsed:.0f} polls/s | client CPU "
            f"{100 * client_cpu / elapsed:.1f} % of one core | |"
        )

        mover = people[1]
        session = requests.Session()
        session.cookies.update(mover)
        board_html = session.get(host + "/deals/board", timeout=30).text
        stage_ids = re.findall(r'<section class="board-column" data-stage-id="([^"]+)"', board_html)
        deal_ids = re.findall(r'data-deal-id="([^"]+)"', board_html)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', board_html).group(1)
        clear()
        cpu, started, moves = cpu_seconds(pids), time.time(), 0
        while time.time() - started < args.seconds:
            with lag.get_lock():
                lag[0] = time.time()
            session.post(
                f"{host}/deals/{random.choice(deal_ids)}/move",
                data={"stage_id": random.choice(stage_ids)},
                headers={"X-CSRFToken": token, "HX-Request": "true"},
                timeout=30,
            )
            moves += 1
            time.sleep(5)
        elapsed = time.time() - started
        cpu = cpu_seconds(pids) - cpu
        changing = polls()
        results.append(
            f"| {args.boards} boards, a move every 5 s ({moves} moves) | {sum(changing.values()) / elapsed:.0f} "
            f"polls/s ({changing}) | server CPU {100 * cpu / elapsed:.1f} % of one core | the last board saw a "
            f"move {lag[1]:.1f} s after it |"
        )
        close_boards(boards)
        # Then the readers alternately without and with the idle boards: the machine's own drift over
        # minutes is as large as what the boards might add, so only pairs timed one after the other compare.
        # Each opening (every board's page and first full answers) is over before the readers start.
        for round_ in range(2, args.rounds + 1):
            alone += readers_phase(f"round {round_}: pages, no board open")
            boards = open_boards()
            time.sleep(5)  # past the boards' opening
            opened += readers_phase(f"round {round_}: pages, {args.boards} idle boards open")
            close_boards(boards)
        alone += readers_phase(f"pages, {args.readers} readers, no board open (last)")
        results.append(
            f"| all rounds: pages without boards, with boards | {len(alone)}, {len(opened)} "
            f"pages | p50 {percentile(alone, 0.5):.0f}, {percentile(opened, 0.5):.0f} ms | "
            f"p95 {percentile(alone, 0.95):.0f}, {percentile(opened, 0.95):.0f} ms |"
        )
    finally:
        for process in (server, streams):
            if process is not None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        drop(args.database_url)
    print(
        f"\ngunicorn {args.workers} workers x {args.threads} threads (keep-alive {args.keep_alive} s), "
        + (
            f"boards on live streams (one gthread process), asking when told and every {STREAM_SAFETY_SECONDS:.0f} s, "
            if args.stream
            else f"polls every {POLL_SECONDS:.0f} s, "
        )
    )
    print(
        f"{args.readers} readers "
        + ("waiting 0.5-2 s between pages (the load test's users)" if args.think else "reading back to back")
        + f", phases of {args.seconds} s, {args.rounds} rounds with the boards open\n"
    )
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

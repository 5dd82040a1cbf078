"""`make bench` / `python -m bench`: seed PostgreSQL at S, M and L and time every main page.

Each page is requested through the real app (WSGI, no network) as a signed-in admin, at least
50 times after a warm-up; we report median and p95 server time and the number of SQL statements.
Results are printed and written to docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

SIZES = {
    "S": {"companies": 200, "contacts": 1_000, "deals": 500, "activities": 2_000, "leads": 200},
    "M": {"companies": 2_000, "contacts": 10_000, "deals": 5_000, "activities": 20_000, "leads": 2_000},
    "L": {"companies": 20_000, "contacts": 100_000, "deals": 50_000, "activities": 200_000, "leads": 20_000},
}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")


@dataclass
class Result:
    page: str
    median_ms: float
    p95_ms: float
    statements: int
    status: int


def database_url(server: str, size: str) -> str:
    return make_url(server).set(database=f"crm_bench_{size.lower()}").render_as_string(hide_password=False)


def ensure_database(server: str, size: str, *, fresh: bool) -> str:
    """Create and seed the size's database unless it already holds that volume."""
    url = database_url(server, size)
    admin = create_engine(make_url(server).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists and fresh:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = False
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()

    from flask_migrate import upgrade

    from crm_web import create_app
    from crm_web.extensions import db
    from crm_web.models import Contact, Organization
    from crm_web.services import accounts, seeding

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        org = accounts.org_by_slug("bench")
        have = 0
        if org is not None:
            have = db.session.scalar(select(func.count()).select_from(Contact).where(Contact.org_id == org.id))
        if have != SIZES[size]["contacts"]:
            if org is None:
                accounts.create_user(org_slug="bench", email=f"bench-{size.lower()}@bench.example",
                                     password="bench-password", role="admin", name="Bench Admin")
                org = accounts.org_by_slug("bench")
            for role in ("manager", "sales"):
                accounts.create_user(org_slug="bench", email=f"{role}-{size.lower()}@bench.example",
                                     password="bench-password", role=role)
            started = time.perf_counter()
            seeding.Seeder(org, seed=1).run(**SIZES[size])
            print(f"  seeded {size} in {time.perf_counter() - started:.0f} s")
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        assert isinstance(org, Organization)
        db.session.remove()
        db.engine.dispose()
    return url


def page_urls(app) -> list[tuple[str, str]]:
    """The pages to measure, with ids picked from the data (a company with contacts, etc.)."""
    from crm_web.extensions import db
    from crm_web.models import Company, Contact, Deal

    with app.app_context():
        company_id = db.session.scalar(
            select(Contact.primary_company_id).where(Contact.primary_company_id.is_not(None)).limit(1))
        contact_id = db.session.scalar(select(Contact.id).limit(1))
        deal_id = db.session.scalar(select(Deal.id).limit(1))
        last_name = db.session.scalar(select(Contact.last_name).limit(1))
        db.session.remove()
    assert company_id and contact_id and deal_id and Company
    return [
        ("dashboard", "/"),
        ("contact list", "/contacts"),
        ("contact list, filtered", "/contacts?f=status.equals.customer&f=name.contains.a"),
        ("contact list, searched", f"/contacts?q={last_name[:5].lower()}"),
        ("contact detail", f"/contacts/{contact_id}"),
        ("company list", "/companies"),
        ("company detail", f"/companies/{company_id}"),
        ("lead list", "/leads"),
        ("deal list", "/deals"),
        ("deal detail", f"/deals/{deal_id}"),
        ("kanban board", "/deals/board"),
        ("activities list", "/activities"),
        ("trash", "/trash"),
        ("global search", f"/search?q={last_name[:4].lower()}"),
    ]


def measure(url: str, requests: int) -> list[Result]:
    from crm_web import create_app
    from crm_web.extensions import db
    from crm_web.models import User

    config = {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False}
    if os.environ.get("REDIS_URL"):
        config.update({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": os.environ["REDIS_URL"],
                       "CACHE_KEY_PREFIX": f"bench-{time.time_ns()}:"})
    app = create_app(config)
    with app.app_context():
        admin_id = db.session.scalar(select(User.id).where(User.role == "admin", User.email.like("bench-%")))
        engine = db.engine
        db.session.remove()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(admin_id)
        session["_fresh"] = True
    results = []
    for name, path in page_urls(app):
        for _ in range(3):  # warm-up: caches, prepared plans
            client.get(path)
        timings = []
        status = 0
        for _ in range(requests):
            statements.clear()
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            status = response.status_code
        timings.sort()
        results.append(Result(name, statistics.median(timings), timings[int(len(timings) * 0.95) - 1],
                              len(statements), status))
    engine.dispose()
    return results


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    try:
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pg = "psql not found"
    return (f"{cpu}, {os.cpu_count()} cores, {memory_kb // 1024 // 1024} GiB RAM; Python {platform.python_version()}; "
            f"{pg}; cache: {'Redis' if os.environ.get('REDIS_URL') else 'in-process'}")


def report(all_results: dict[str, list[Result]], requests: int) -> str:
    sizes = list(all_results)
    header = "| page | " + " | ".join(f"{s} median ms | {s} p95 ms | {s} stmts" for s in sizes) + " |"
    lines = [header, "|---|" + "---:|" * (3 * len(sizes))]
    for index, first in enumerate(all_results[sizes[0]]):
        cells = []
        for size in sizes:
            r = all_results[size][index]
            flag = "" if r.status == 200 else f" (HTTP {r.status})"
            cells += [f"{r.median_ms:.1f}{flag}", f"{r.p95_ms:.1f}", str(r.statements)]
        lines.append(f"| {first.page} | " + " | ".join(cells) + " |")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Run {stamp} on {machine()}.\n\n{requests} requests per page after 3 warm-up requests, "
            f"in-process WSGI (server time, no network), signed in as an admin of an org holding all rows.\n\n"
            + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S,M,L", help="comma-separated subset of S,M,L")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL (database name ignored)")
    parser.add_argument("--fresh", action="store_true", help="drop and re-seed the benchmark databases")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmark-results.md"))
    args = parser.parse_args(argv)
    if args.requests < 50:
        parser.error("--requests must be at least 50")
    sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(s not in SIZES for s in sizes):
        parser.error("--sizes takes S, M and/or L")
    all_results = {}
    for size in sizes:
        print(f"size {size}: {SIZES[size]}")
        url = ensure_database(args.server, size, fresh=args.fresh)
        all_results[size] = measure(url, args.requests)
    text_report = report(all_results, args.requests)
    print(text_report)
    Path(args.output).parent.mkdir(exist_ok=True)
    Path(args.output).write_text("# Benchmark results (generated by `make bench`)\n\n" + text_report)
    print(f"written to {args.output}")
    return 0

"""`python -m bench.profile`: where a page's server time goes: SQL, template rendering, other Python.

Requests the named pages of `make bench` (and the fragments each loads on arrival) in-process, as
`make bench` does (the web role, Redis when REDIS_URL is set, start-up objects frozen), and splits
each request's time into the SQL statements' execution (the driver's execute, rows fetched
included), template rendering (the outermost render, less the SQL run inside it) and the rest
(routing, sign-in, services, building ORM objects, the response). `--top N` also prints the N
functions that took the most time under cProfile (`--sort cumulative` or `tottime`), per request URL.

    python -m bench.profile --size L --pages "company list,company detail"
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from bench.run import (
    DB_PREFIX,
    DEFAULT_SERVER,
    FRAGMENT_HEADERS,
    arrive,
    bench_app,
    database_url,
)

DEFAULT_PAGES = "dashboard,company list,company detail,lead list"


@dataclass
class Split:
    """One request's time, ms."""

    total: float = 0.0
    sql: float = 0.0
    template: float = 0.0
    statements: int = 0

    @property
    def python(self) -> float:
        return self.total - self.sql - self.template


@dataclass
class _Clock:
    """Accumulates SQL and template time through the engine's and the templates' signals."""

    split: Split = field(default_factory=Split)
    sql_started: float = 0.0
    render_depth: int = 0
    render_started: float = 0.0
    sql_in_render: float = 0.0

    def before_sql(self, *_args: Any) -> None:
        self.sql_started = time.perf_counter()

    def after_sql(self, *_args: Any) -> None:
        spent = (time.perf_counter() - self.sql_started) * 1000
        self.split.sql += spent
        self.split.statements += 1
        if self.render_depth:
            self.sql_in_render += spent

    def before_render(self, *_args: Any, **_kwargs: Any) -> None:
        if self.render_depth == 0:
            self.render_started = time.perf_counter()
            self.sql_in_render = 0.0
        self.render_depth += 1

    def after_render(self, *_args: Any, **_kwargs: Any) -> None:
        self.render_depth -= 1
        if self.render_depth == 0:
            self.split.template += (time.perf_counter() - self.render_started) * 1000 - self.sql_in_render


def _listen(app: Any, engine: Any, clock: _Clock) -> Callable[[], None]:
    """Connect `clock` to the engine's and the templates' signals; returns what disconnects it."""
    from flask import before_render_template, template_rendered
    from jinja2_fragments import flask as fragments

    signals = (
        (before_render_template, template_rendered),
        (fragments.before_render_template_block, fragments.template_block_rendered),
        (fragments.before_render_template_blocks, fragments.template_blocks_rendered),
    )
    event.listen(engine, "before_cursor_execute", clock.before_sql)
    event.listen(engine, "after_cursor_execute", clock.after_sql)
    for starts, ends in signals:
        starts.connect(clock.before_render, app, weak=False)
        ends.connect(clock.after_render, app, weak=False)

    def stop() -> None:
        event.remove(engine, "before_cursor_execute", clock.before_sql)
        event.remove(engine, "after_cursor_execute", clock.after_sql)
        for starts, ends in signals:
            starts.disconnect(clock.before_render, app)
            ends.disconnect(clock.after_render, app)

    return stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="L")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--db-prefix", default=DB_PREFIX)
    parser.add_argument(
        "--pages",
        default=DEFAULT_PAGES,
        help=f"page names of `make bench`, split by commas, or by | when a name has one (default {DEFAULT_PAGES})",
    )
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--top", type=int, default=0, help="also print the N functions that took the most time")
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"), help="the order of --top")
    args = parser.parse_args(argv)
    from flask import url_for

    from crm_web.extensions import db

    bench = bench_app(database_url(args.server, args.size.upper(), args.db_prefix))
    app, client = bench.app, bench.client
    with app.app_context():
        engine = db.engine
    clock = _Clock()
    _listen(app, engine, clock)
    specs = {spec.name: spec for spec in bench.specs}
    wanted = (
        [args.pages.strip()]
        if args.pages.strip() in specs
        else [name.strip() for name in args.pages.split("|" if "|" in args.pages else ",") if name.strip()]
    )
    print(f"{'request':64} {'total':>7} {'SQL':>7} {'template':>8} {'Python':>7} stmts   (medians, ms)")
    for name in wanted:
        spec = specs[name]
        with app.test_request_context():
            path = url_for(spec.endpoint, **spec.args)

        def request(url: str, fragment: bool) -> tuple[int, str]:
            response = client.get(url, headers=FRAGMENT_HEADERS if fragment else {})
            return response.status_code, response.get_data(as_text=True)

        for _ in range(3):  # warm-up, as a browser arrives (a page renders inline what it has cached)
            fragments = arrive(request, path).fragments
        for url, headers in [(path, {}), *((fragment, FRAGMENT_HEADERS) for fragment in fragments)]:
            for _ in range(3):
                client.get(url, headers=headers)
            splits = []
            profiler = cProfile.Profile() if args.top else None
            for _ in range(args.requests):
                clock.split = Split()
                if profiler:
                    profiler.enable()
                started = time.perf_counter()
                response = client.get(url, headers=headers)
                clock.split.total = (time.perf_counter() - started) * 1000
                if profiler:
                    profiler.disable()
                assert response.status_code == 200, (url, response.status_code)
                splits.append(clock.split)
            label = f"{name}: {url}" if url == path else f"  + {url}"
            print(
                f"{label[:64]:64} {statistics.median(s.total for s in splits):7.1f} "
                f"{statistics.median(s.sql for s in splits):7.1f} {statistics.median(s.template for s in splits):8.1f} "
                f"{statistics.median(s.python for s in splits):7.1f} {splits[-1].statements:5}"
            )
            if profiler:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
                print(out.getvalue())
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

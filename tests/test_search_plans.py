"""Which index the global search reads (PostgreSQL query plans).

A plan is the planner's choice from the table's size and statistics, and in a tiny test table that
choice follows whatever earlier tests left behind: rows they rolled back still fill the heap and the
indexes, and an ANALYZE's page and row counts outlive its rollback. So these tests run on a
PostgreSQL database of their own (the module's `app`), and each plan is made with the contacts
table's statistics reset as in a fresh database.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from crm_web.extensions import db
from tests.conftest import build_app, postgres_database
from tests.test_search import global_contacts, make_people


@pytest.fixture(scope="module")
def app():
    """A fresh PostgreSQL database for this module only (overrides the session-wide `app`)."""
    with postgres_database() as url:
        application = build_app(url)
        yield application
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


NEVER_ANALYSED = """
    WITH contact_relations AS (
        SELECT 'contacts'::regclass AS oid
        UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = 'contacts'::regclass
    ), _ AS (DELETE FROM pg_statistic WHERE starelid IN (SELECT oid FROM contact_relations))
    UPDATE pg_class SET reltuples = -1, relpages = 0, relallvisible = 0 FROM contact_relations
    WHERE pg_class.oid = contact_relations.oid
"""


def global_search_plan(user, q: str) -> list[str]:
    """EXPLAIN ANALYZE of the contacts statement the global search ran for `q` (sequential scans off:
    in a tiny test table any usable index must be the planner's choice), with the statistics reset as
    in a fresh database: a catalog change inside the test's transaction, rolled back with it."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(global_contacts(user, q)) == 5
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    ((statement, parameters),) = [(s, p) for s, p in captured if "FROM contacts" in s]
    connection = db.session.connection()
    connection.execute(text(NEVER_ANALYSED))
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    return list(connection.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters).scalars())


def nodes_testing(lines: list[str], operator: str) -> list[str]:
    """The plan nodes with `operator` in a condition of theirs."""
    return [
        next(node for node in reversed(lines[:i]) if "->" in node)
        for i, line in enumerate(lines)
        if operator in line and ("Filter" in line or "Cond" in line)
    ]


def assert_never_runs(lines: list[str], condition: str) -> None:
    """Some plan node tests `condition`, and none of them ran."""
    nodes = nodes_testing(lines, condition)
    assert nodes and all("(never executed)" in node for node in nodes), "\n".join(lines)


def assert_read_from(lines: list[str], index: str, condition: str) -> None:
    """A scan of `index` testing `condition` ran."""
    nodes = nodes_testing(lines, condition)
    assert any(index in node and "(never executed)" not in node for node in nodes), "\n".join(lines)


def test_a_common_name_never_runs_the_typo_search(org, users):
    """The typo tier sits behind a one-time filter: with exact hits its steps never run, so a common
    name's type-ahead never pays for its corrections (docs/benchmarks.md)."""
    make_people(org, *(f"Ann Smith{i}" for i in range(6)))  # "mith": in six names, one letter from "smith"
    assert_never_runs(global_search_plan(users["admin"], "mith"), "'%smith%'")


def test_a_common_name_is_read_from_the_name_index_and_ranks_nothing(org, users):
    make_people(org, *(f"John Person{i}" for i in range(6)), "Elton Johnson")
    lines = global_search_plan(users["admin"], "john")
    assert any("contact_name_order_idx" in line for line in lines), "\n".join(lines)
    assert_never_runs(lines, "~~*")


def test_a_typo_of_a_common_name_reads_the_corrected_names_from_the_name_index(org, users):
    """The corrected words take the exact tier's steps: with LIMIT names starting with the corrected
    query, the name index answers and the corrected matches are never ranked."""
    make_people(org, *(f"Smith Person{i}" for i in range(6)))
    lines = global_search_plan(users["admin"], "smiht")
    assert_read_from(lines, "contact_name_order_idx", ">= 'smith'")
    assert_never_runs(lines, "'%smith%'")


def test_a_common_last_name_is_read_from_the_surname_index_and_ranks_nothing(org, users):
    make_people(org, *(f"Person{i} Williams" for i in range(6)), "Ann Williamson")
    lines = global_search_plan(users["admin"], "williams")
    assert_read_from(lines, "contact_surname_idx", "lower((last_name)::text) =")
    assert_never_runs(lines, "'%williams%'")

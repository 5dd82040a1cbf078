"""Which index the global search reads (PostgreSQL query plans).

A plan is the planner's choice from the table's size and statistics, and in a tiny test table that
choice follows whatever earlier tests left behind: rows they rolled back still fill the heap and the
indexes, and an ANALYZE's page and row counts outlive its rollback. So these tests run on a
PostgreSQL database of their own (the module's `app`), and each plan is made with the contacts
table's statistics reset as in a fresh database.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, insert, select, text

from bench.tenants import rows_read
from crm_web.extensions import db
from crm_web.models import Contact
from crm_web.models.mixins import full_name, search_key
from tests.conftest import build_app, postgres_database
from tests.test_search import contact_names, global_contacts, make_people


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


def global_search_plan(user, q: str, *, fresh_statistics: bool = True) -> list[str]:
    """EXPLAIN ANALYZE of the contacts statement the global search ran for `q` (sequential scans off:
    in a tiny test table any usable index must be the planner's choice), with the statistics reset as
    in a fresh database (unless the test analysed the rows it made): a catalog change inside the
    test's transaction, rolled back with it."""
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
    if fresh_statistics:
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


def test_the_search_plans_without_parallel_workers_for_its_transaction_only(org, users):
    """A generic plan costs each step for any word: in a big organisation the total passed the
    threshold of parallel workers, started on every request for steps their one-time filters skip.
    The search turns them off with its plan setting, for its own transaction (and JIT is off in
    every transaction of the app: test_tenant_isolation.py)."""
    make_people(org, *(f"John Person{i}" for i in range(6)))
    settings = text("SELECT current_setting('plan_cache_mode'), current_setting('max_parallel_workers_per_gather')")
    before = tuple(db.session.execute(settings).one())
    assert before[0] == "auto" and before[1] != "0", before
    assert len(global_contacts(users["admin"], "john")) == 5
    assert tuple(db.session.execute(settings).one()) == ("force_generic_plan", "0")
    db.session.rollback()
    assert tuple(db.session.execute(settings).one()) == before


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


def test_a_word_in_custom_text_fields_is_read_from_their_trigram_indexes(org, users):
    """Each custom text field's condition is a scan of its trigram index, OR-ed with the built-in
    columns' ones (a BitmapOr): with any branch unindexed the whole condition reads every row."""
    from crm_web.custom_fields import FieldInput
    from crm_web.services.contacts import ContactService
    from crm_web.services.custom_fields import CustomFieldService, search_index_name
    from tests import factories

    admin = factories.actor_for(users["admin"])
    fields = [
        CustomFieldService(admin).create("contact", FieldInput(label=label, type=kind))
        for label, kind in (("Region", "text"), ("Notes", "long_text"), ("Site", "url"))
    ]
    for i in range(6):
        ContactService(admin).create(first_name=f"Ann{i}", last_name="Person", custom_input={"notes": "met zqfair"})
    # An organisation's worth of rows with values, analysed: in a handful of rows any index of the
    # organisation's live rows (the fields' own btree ones) is cheaper to read whole than any search.
    rows = [
        {
            "id": uuid.uuid4(),
            "org_id": org.id,
            "first_name": f"Bulk{i}",
            "last_name": "Row",
            "custom": {"region": f"region {i % 50}", "notes": f"note {i}", "site": f"https://s{i}.example"},
            "version": 1,
        }
        for i in range(3000)
    ]
    db.session.execute(insert(Contact.__table__), rows)
    # As (auto)vacuum leaves them: new entries wait in a GIN index's pending list, which the planner
    # prices as read whole.
    db.session.execute(
        text(
            "SELECT gin_clean_pending_list(i.indexrelid::regclass) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = 'contacts'::regclass AND a.amname = 'gin'"
        )
    )
    db.session.execute(text("ANALYZE contacts"))
    # The search plans its statements without their parameters' values (generic plans), which prove a
    # partial index's `org_id = '<the org>'` only from that literal: the statement must carry it.
    captured: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        global_contacts(users["admin"], "zqfair")
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    (statement,) = [s for s in captured if "FROM contacts" in s]
    assert f"contacts.org_id = '{org.id}'" in statement, statement[:2000]
    lines = global_search_plan(users["admin"], "zqfair", fresh_statistics=False)
    assert "BitmapOr" in "\n".join(lines), "\n".join(lines)
    for cf in fields:
        assert_read_from(lines, search_index_name(org.id, cf), "~~*")
    assert_read_from(lines, "contact_name_trgm_idx", "~~*")


# The contacts indexes besides contact_name_trgm_idx and the constraints'.
OTHER_CONTACT_INDEXES = text(
    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = 'contacts'::regclass AND c.relname <> 'contact_name_trgm_idx' "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
)


def index_scans(node: dict) -> list[dict]:
    """The executed plan's bitmap index scans."""
    own = [node] if node["Node Type"] == "Bitmap Index Scan" else []
    return own + [scan for child in node.get("Plans", ()) for scan in index_scans(child)]


def test_a_small_organisation_s_search_reads_only_its_own_matches(org, other_org, users):
    """The trigram indexes lead with org_id (migration 0037): next to an organisation with thousands of
    matches, a small one's search reads its own few from the index, not everyone's (docs/benchmarks.md,
    "Many tenants": 21,445 entries against 1,000 alone before)."""

    def bulk(owner, count: int, last_name: str) -> None:
        rows = [
            {
                "id": uuid.uuid4(),
                "org_id": owner.id,
                "first_name": f"P{i}",
                "last_name": last_name,
                "email": f"p{i}@{owner.slug}.example",
                "version": 1,
            }
            for i in range(count)
        ]
        db.session.execute(insert(Contact.__table__), rows)

    bulk(other_org, 6000, "Azqsmithe")  # the big organisation: every row matches
    bulk(org, 1000, "Other")  # the small one: many rows, few matches
    make_people(org, *(f"Ann{i} Bzqsmithy" for i in range(5)))
    db.session.execute(
        text(
            "SELECT gin_clean_pending_list(i.indexrelid::regclass) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = 'contacts'::regclass AND a.amname = 'gin'"
        )
    )
    db.session.execute(text("ANALYZE contacts"))
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(contact_names(users["admin"], "zqsmith")) == 5  # the list search
        assert len(global_contacts(users["admin"], "zqsmith")) == 5
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    searched = [(s, p) for s, p in captured if "FROM contacts" in s and "zqsmith" in str(p) + s]
    assert searched
    connection = db.session.connection()
    connection.execute(text("SET LOCAL enable_seqscan = off"))  # the small organisation's rows are few

    # Whatever path the planner takes, the searches read about the organisation's own 1,005 rows (index
    # entries and table rows), not the other's 6,000 matches.
    for statement, parameters in searched:
        (plan,) = connection.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
        assert rows_read(plan["Plan"]) <= 2 * 1_005 + 100, statement
    # The trigram index's scan itself, the only index left (the others dropped in the test's transaction):
    # only the organisation's 5 matches (6,005, every organisation's, before migration 0037).
    for name in connection.scalars(OTHER_CONTACT_INDEXES).all():
        connection.execute(text(f'DROP INDEX "{name}"'))
    stmt = select(Contact.id).where(
        Contact.org_id == org.id, search_key(full_name(Contact.first_name, Contact.last_name)).ilike("%zqsmith%")
    )
    compiled = stmt.compile(connection)
    (plan,) = connection.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled), compiled.params).scalar()
    (scan,) = index_scans(plan["Plan"])
    assert scan["Index Name"] == "contact_name_trgm_idx" and "org_id =" in scan["Index Cond"], scan
    assert "~~*" in scan["Index Cond"] and scan["Actual Rows"] == 5, scan

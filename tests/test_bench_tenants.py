"""`make bench-tenants` compares each query's plan for a small organisation next to many others with its
plan alone (bench/tenants.py): the comparison's pure parts, on hand-written EXPLAIN (FORMAT JSON) trees;
and the copies of a seeded organisation it makes in SQL, a batch per statement (PostgreSQL)."""

import uuid

import pytest
from sqlalchemy import text

from bench.tenants import (
    BEGIN_MARK,
    CLONED,
    END_MARK,
    clone_orgs,
    compare_plans,
    markers,
    plan_shape,
    rows_read,
    shape_text,
    statement_key,
    worst_estimate,
    write_report,
)
from crm_web.extensions import db
from crm_web.services import seeding
from tests import factories


def scan(kind, relation, index=None, rows=10, removed=0, loops=1, estimated=10):
    node = {
        "Node Type": kind,
        "Relation Name": relation,
        "Actual Rows": rows,
        "Actual Loops": loops,
        "Plan Rows": estimated,
        "Rows Removed by Filter": removed,
    }
    if index:
        node["Index Name"] = index
    return node


def join(kind, *children, join_type="Inner"):
    return {
        "Node Type": kind,
        "Join Type": join_type,
        "Plans": list(children),
        "Actual Rows": 10,
        "Actual Loops": 1,
        "Plan Rows": 10,
    }


def test_the_shape_keeps_node_types_join_order_relations_and_indexes_but_not_the_numbers():
    by_index = join("Nested Loop", scan("Index Scan", "contacts", "ix_contacts_org"), scan("Seq Scan", "deals"))
    same = join(
        "Nested Loop",
        scan("Index Scan", "contacts", "ix_contacts_org", rows=900, estimated=3),
        scan("Seq Scan", "deals", rows=1),
    )
    swapped = join("Nested Loop", scan("Seq Scan", "deals"), scan("Index Scan", "contacts", "ix_contacts_org"))
    assert plan_shape(by_index) == plan_shape(same)
    assert plan_shape(by_index) != plan_shape(swapped)
    assert plan_shape(by_index) != plan_shape(join("Hash Join", *by_index["Plans"]))
    assert shape_text(plan_shape(by_index)) == "Nested Loop(Index Scan contacts/ix_contacts_org, Seq Scan deals)"
    left = join("Hash Join", scan("Seq Scan", "deals"), scan("Seq Scan", "contacts"), join_type="Left")
    assert shape_text(plan_shape(left)) == "Left Hash Join(Seq Scan deals, Seq Scan contacts)"


def test_a_custom_field_index_is_the_same_index_in_every_organisation():
    mine = scan("Index Scan", "contacts", "cf_0123456789ab_f1")
    theirs = scan("Index Scan", "contacts", "cf_ba9876543210_f1")
    other_field = scan("Index Scan", "contacts", "cf_ba9876543210_f2")
    assert plan_shape(mine) == plan_shape(theirs) != plan_shape(other_field)
    assert statement_key(
        "SELECT 1 FROM contacts /* cf_0123456789ab_f1 */ WHERE id = '6a0e2a4c-1b7d-4c39-9d63-1e2f1a0b9c11'"
    ) == ("SELECT 1 FROM contacts /* cf_<org>_f1 */ WHERE id = '<id>'")


def test_rows_read_counts_what_scans_returned_and_filtered_out_per_loop():
    plan = join(
        "Nested Loop",
        scan("Seq Scan", "deals", rows=5, removed=995),
        scan("Index Scan", "contacts", "ix", rows=1, loops=5),
    )
    assert rows_read(plan) == 1_000 + 5


def test_the_worst_estimate_is_a_factor_either_way_and_skips_nodes_that_never_ran():
    assert worst_estimate(scan("Index Scan", "contacts", "ix", rows=400, estimated=4)) == 100
    assert worst_estimate(scan("Index Scan", "contacts", "ix", rows=2, estimated=20)) == 10
    assert worst_estimate(scan("Index Scan", "contacts", "ix", rows=0, estimated=5_000, loops=0)) == 1


def test_statements_pair_by_text_in_order_and_a_plan_reading_other_organisations_rows_is_flagged():
    alone = [
        ("SELECT a", scan("Seq Scan", "contacts", rows=990, removed=10)),
        ("UPDATE b", None),
        ("SELECT c", scan("Index Scan", "deals", "ix_deals", rows=5)),
    ]
    shared = [
        ("SELECT a", scan("Index Scan", "contacts", "ix_contacts_org", rows=990)),  # another shape, as cheap
        ("UPDATE b", None),
        ("SELECT c", scan("Seq Scan", "deals", rows=5, removed=500_000)),  # reads every organisation's deals
        ("SELECT d", scan("Seq Scan", "tags", rows=6)),  # no counterpart
    ]
    check = compare_plans("deal list", shared, alone)
    assert check.statements == 3 and check.unpaired == 1
    assert check.rows_here == 990 + 500_005 and check.rows_there == 1_000 + 5
    benign, bad = check.diffs
    assert not benign.reads_more and not benign.seq_scans
    assert bad.reads_more and bad.seq_scans == ["deals"]
    assert bad.here == "Seq Scan deals" and bad.there == "Index Scan deals/ix_deals"


def test_the_section_is_appended_once_then_replaced_between_its_markers(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nWritten analysis.\n")
    write_report(path, "first table\n")
    write_report(path, "second table\n")
    text = path.read_text()
    assert text.count(BEGIN_MARK) == 1 and text.count(END_MARK) == 1
    assert "Written analysis." in text and "second table" in text and "first table" not in text


def test_each_big_size_has_its_own_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    write_report(path, "next to L\n")
    write_report(path, "next to XL\n", "XL")
    write_report(path, "next to XL again\n", "XL")
    text = path.read_text()
    begin, end = markers("XL")
    assert markers("L") == (BEGIN_MARK, END_MARK) and begin != BEGIN_MARK
    assert text.count(begin) == 1 and text.count(end) == 1 and text.count(BEGIN_MARK) == 1
    assert "next to L" in text and "next to XL again" in text and "next to XL\n" not in text


# The link tables have no org_id: their rows belong to the organisation of the record they link.
LINKED = {
    "contact_tags": ("contacts", "contact_id"),
    "company_tags": ("companies", "company_id"),
    "deal_tags": ("deals", "deal_id"),
    "lead_tags": ("leads", "lead_id"),
}


def rows_of(org_id):
    """Each CLONED table's rows of the organisation, and the tallies and search words its triggers made."""
    found = {}
    for table in (*CLONED, "deal_tallies", "activity_tallies", "search_words"):
        if table in LINKED:
            parent, key = LINKED[table]
            sql = f"SELECT count(*) FROM {table} x JOIN {parent} p ON p.id = x.{key} WHERE p.org_id = :o"
        else:
            sql = f"SELECT count(*) FROM {table} WHERE org_id = :o"
        found[table] = db.session.scalar(text(sql), {"o": org_id})
    return found


def tallies(org_id):
    deals = db.session.execute(
        text(
            "SELECT status, currency, expected_month, closed_month, sum(deals), sum(value), sum(weighted) "
            "FROM deal_tallies WHERE org_id = :o GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ),
        {"o": org_id},
    ).all()
    activities = db.session.execute(
        text(
            "SELECT status, type, sum(activities) FROM activity_tallies WHERE org_id = :o GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"o": org_id},
    ).all()
    words = db.session.scalars(text("SELECT word FROM search_words WHERE org_id = :o ORDER BY word"), {"o": org_id})
    return deals, activities, list(words)


def ids_of(org_id):
    """Every id of the organisation's records."""
    found = set()
    for table in CLONED:
        if "id" in db.metadata.tables[table].c:
            found |= set(db.session.scalars(text(f"SELECT id::text FROM {table} WHERE org_id = :o"), {"o": org_id}))
    return found


@pytest.mark.postgres_only
def test_a_batch_of_copies_has_its_source_s_rows_with_new_ids_and_the_same_tallies(app):
    source, other = factories.make_org("source"), factories.make_org("other")
    for org, seed in ((source, 5), (other, 6)):
        for role in ("admin", "manager", "sales"):
            factories.make_user(org, role=role)
        seeding.Seeder(org, seed=seed).run(companies=6, contacts=25, leads=5, deals=12, activities=40)
    batch = [
        {"src": org.id, "new": uuid.uuid4(), "slug": f"tenant-900{n}", "name": f"Tenant 900{n}"}
        for n, org in enumerate((source, source, other))  # twice the same source in one batch
    ]
    clone_orgs(db.session.connection(), batch)

    first, second, third = (row["new"] for row in batch)
    rows = rows_of(source.id)
    assert rows_of(first) == rows_of(second) == rows and rows_of(third) == rows_of(other.id)
    assert all(rows[table] for table in ("contacts", "contact_tags", "deals", "activities", "search_words"))
    assert tallies(first) == tallies(second) == tallies(source.id) and tallies(third) == tallies(other.id)
    assert tallies(first) != tallies(third)
    ids = [ids_of(org_id) for org_id in (source.id, first, second, third)]
    assert all(ids) and sum(map(len, ids)) == len(set().union(*ids))  # no id copied
    # every reference of a copy names the copy's own records
    foreign = db.session.scalar(
        text(
            "SELECT count(*) FROM deals d LEFT JOIN pipeline_stages s ON s.id = d.stage_id AND s.org_id = d.org_id "
            "LEFT JOIN users u ON u.id = d.owner_id AND u.org_id = d.org_id "
            "LEFT JOIN contacts c ON c.id = d.contact_id AND c.org_id = d.org_id "
            "WHERE d.org_id = :o AND ((d.stage_id IS NOT NULL AND s.id IS NULL) "
            "OR (d.owner_id IS NOT NULL AND u.id IS NULL) OR (d.contact_id IS NOT NULL AND c.id IS NULL))"
        ),
        {"o": first},
    )
    assert foreign == 0
    emails = db.session.scalars(text("SELECT email FROM users WHERE org_id = :o ORDER BY email"), {"o": second})
    assert list(emails) == [f"{role}@tenant-9001.bench.example" for role in ("admin", "manager", "sales")]
    names = db.session.execute(text("SELECT slug, name FROM organizations WHERE id = :o"), {"o": third}).one()
    assert tuple(names) == ("tenant-9002", "Tenant 9002")

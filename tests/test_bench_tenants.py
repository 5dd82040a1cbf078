"""`make bench-tenants` compares each query's plan for a small organisation next to many others with its
plan alone (bench/tenants.py): the comparison's pure parts, on hand-written EXPLAIN (FORMAT JSON) trees."""

from bench.tenants import (
    BEGIN_MARK,
    END_MARK,
    compare_plans,
    plan_shape,
    rows_read,
    shape_text,
    statement_key,
    worst_estimate,
    write_report,
)


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

"""The plans of the list pages' heaviest statements: each reads what it shows through an index, not
every row of the organisation. SQLite (the embedded default) plans without statistics, as it does
for its users; PostgreSQL is asked with sequential scans off, which shows whether an index can serve
the statement at all (with a handful of rows it would rightly scan)."""

from __future__ import annotations

import re

from sqlalchemy import event, text

from crm_web.extensions import db
from crm_web.models import ContactCompany
from tests import factories
from tests.conftest import HX


def _statements(client, path: str) -> list[tuple[str, object]]:
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert client.get(path, headers=HX).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return captured


def _plan(engine_name: str, statement: str, parameters: object) -> str:
    """The plan, one line per step, run on the test's own connection (it sees the test's rows)."""
    cursor = db.session.connection().connection.driver_connection.cursor()
    try:
        if engine_name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(row[3] for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
        return plan
    finally:
        cursor.close()


def _one(statements: list[tuple[str, object]], marker: str) -> tuple[str, object]:
    found = [(statement, parameters) for statement, parameters in statements if marker in statement]
    assert len(found) == 1, [statement[:200] for statement, _ in statements]
    return found[0]


def _company_with_contacts(org):
    company = factories.make_company(org)
    others = [factories.make_company(org) for _ in range(3)]
    for index in range(6):
        factories.make_contact(org, primary_company_id=(company if index % 2 else others[index % 3]).id)
    associated = factories.make_contact(org, primary_company_id=others[0].id)
    db.session.add(ContactCompany(org_id=org.id, contact_id=associated.id, company_id=company.id, role="Advisor"))
    factories.make_deal(org, company_id=company.id)
    db.session.commit()
    return company


def test_company_contacts_fragment_reads_the_company_s_contacts_by_index(client, login, org, engine_name):
    """The company page's contacts fragment: the primary company's index and the association index
    give the ids, the primary key the rows; no filter over every contact of the organisation."""
    login("sales")
    company = _company_with_contacts(org)
    statements = _statements(client, f"/companies/{company.id}/contacts")
    statement, parameters = _one(statements, "contacts.first_name")
    plan = _plan(engine_name, statement, parameters)
    if engine_name == "sqlite":
        assert "SEARCH contacts USING INDEX sqlite_autoindex_contacts_1 (id=?)" in plan, plan
        assert "ix_contacts_org_company (org_id=? AND primary_company_id=?)" in plan, plan
        assert "ix_contact_companies_company (company_id=?)" in plan, plan
    else:
        # With a few rows and no statistics the planner's choices say little about L; what must hold is
        # that no step filters the organisation's contacts by the OR of both memberships (which read
        # all of them through `(primary_company_id = ...) OR (hashed SubPlan ...)`).
        assert "ix_contact_companies_company" in plan, plan
        assert " OR " not in plan and "hashed SubPlan" not in plan, plan


def test_sqlite_reads_a_company_s_and_a_contact_s_deals_through_their_own_index(client, login, org, engine_name):
    """The detail pages list the record's deals newest first: on SQLite read through the record's index
    entries and sorted, not by walking every deal of the organisation in creation order
    (services/sql.sorted_unindexed). PostgreSQL's plan is its statistics' business."""
    if engine_name != "sqlite":
        return
    login("sales")
    company = _company_with_contacts(org)
    contact = factories.make_contact(org)
    factories.make_deal(org, contact_id=contact.id, company_id=company.id)
    for path, index in (
        (f"/companies/{company.id}", "ix_deals_org_company (org_id=? AND company_id=?)"),
        (f"/contacts/{contact.id}", "ix_deals_org_contact (org_id=? AND contact_id=?)"),
    ):
        statement, parameters = _one(_statements(client, path), "FROM deals LEFT OUTER JOIN")
        plan = _plan(engine_name, statement, parameters)
        assert plan.splitlines()[0] == f"SEARCH deals USING INDEX {index}", (path, plan)


def test_sqlite_list_pages_read_the_page_s_rows_by_primary_key(client, login, org, users, engine_name):
    """SQLite has no statistics: the rows of a page (`id IN (the page's ids)`) are read by primary key,
    not through an org_id index over every row of the organisation; the company list's per-row
    numbers come from the company's own index entries."""
    if engine_name != "sqlite":
        return
    login("admin")
    _company_with_contacts(org)
    factories.make_activity(org, owner_id=users["admin"].id)
    for path, table in (("/contacts", "contacts"), ("/companies", "companies"), ("/activities", "activities")):
        statements = _statements(client, path)
        # The page's ids come first (services/pagination.read_page), then its rows by those ids.
        statement, parameters = _one(statements, f"{table}.id IN (")
        plan = _plan(engine_name, statement, parameters)
        assert plan.splitlines()[0] == f"SEARCH {table} USING INDEX sqlite_autoindex_{table}_1 (id=?)", (path, plan)
        if table == "companies":
            assert "SEARCH contact_companies USING INDEX ix_contact_companies_company (company_id=?)" in plan, plan
            assert "SEARCH deals USING INDEX ix_deals_org_company (org_id=? AND company_id=?)" in plan, plan
            assert "ix_contacts_org_status_live" not in plan and "ix_deals_org_status_live" not in plan, plan


def test_company_and_lead_lists_read_their_page_and_total_from_live_indexes(client, login, org, engine_name):
    """PostgreSQL: the company list's default order (lower(name), then id) is read from the live
    companies' index in that order, not sorted from every company of the organisation; the company
    and lead lists' totals are index-only counts of live rows."""
    if engine_name != "postgresql":
        return
    login("admin")
    for index in range(3):
        factories.make_company(org, name=f"Plan {index}")
        factories.make_lead(org)
    db.session.commit()
    statements = _statements(client, "/companies")
    page = _plan(engine_name, *_one(statements, "companies.name, companies.website"))
    assert "ix_companies_org_lower_name_live" in page, page
    _assert_counted_from_a_live_index(_plan(engine_name, *_one(statements, "count(*)")), "companies")
    _assert_counted_from_a_live_index(_plan(engine_name, *_one(_statements(client, "/leads"), "count(*)")), "leads")


def _assert_counted_from_a_live_index(plan: str, table: str) -> None:
    """An index-only scan of one of the table's partial indexes of live rows (any: the planner takes the
    smallest)."""
    counted = re.search(rf"Index Only Scan using (\w+) on {table}", plan)
    assert counted, plan
    definition = db.session.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": counted[1]})
    assert definition.endswith("WHERE (deleted_at IS NULL)"), definition


def test_my_day_reads_the_owner_s_open_deals_from_their_index_alone(client, login, org, users, engine_name):
    """PostgreSQL: My day's deals take their ids from the owner's open live deals index (an index-only
    scan, with the few stages that rot read once), and read whole only the rows shown: not every open
    deal of the organisation with a stage looked up per deal."""
    if engine_name != "postgresql":
        return
    login("sales")
    for _ in range(3):
        factories.make_deal(org, owner_id=users["sales"].id)
    db.session.commit()
    statement, parameters = _one(_statements(client, "/my-day"), "FROM deals")
    plan = _plan(engine_name, statement, parameters)
    assert "Index Only Scan using ix_deals_org_owner_open_close_live" in plan, plan
    assert "ix_deals_org_status_close" not in plan, plan

"""Deep pages (services/pagination.py): past the numbered pages a list is read from a cursor, forwards,
backwards and from its end, in the same order as its first page, ties and NULLs included; its total is
counted up to LIST_COUNT_BOUND; a forged cursor is a 400; a deep page costs what the first one does and,
on PostgreSQL, reads no more rows than a shallow one."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, text

from crm_web.custom_fields import FieldInput
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import Contact
from crm_web.services.activities import ActivityService
from crm_web.services.contacts import ContactService
from crm_web.services.custom_fields import CustomFieldService
from crm_web.services.pagination import Cursor, decode_cursor, encode_cursor
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS

BOUND = 5  # rows counted; with 3 a page, pages 1 and 2 are numbered, the rest read by cursor
PER_PAGE = 3


@pytest.fixture
def bounded(app, monkeypatch):
    monkeypatch.setitem(app.config, "LIST_COUNT_BOUND", BOUND)


@pytest.fixture
def admin(users):
    return factories.actor_for(users["admin"])


@pytest.fixture
def contacts(org, users, admin):
    """20 contacts with ties in every sort key and NULLs in the nullable ones (email, company, last
    activity, the custom score)."""
    CustomFieldService(admin).create("contact", FieldInput(label="Score", type="number"))
    acme, zeta = factories.make_company(org, name="Acme"), factories.make_company(org, name="Zeta")
    moment = datetime(2026, 3, 1, 9, tzinfo=UTC)
    made = []
    for n in range(20):
        made.append(
            factories.make_contact(
                org,
                first_name=["Ann", "Bob", "Cy"][n % 3],
                last_name=["Smith", "Jones"][n % 2] if n < 14 else f"Solo{n}",
                email=None if n % 4 == 0 else f"same{n % 3}@example.com",
                city="Paris" if n % 2 else "Oslo",
                primary_company_id=[acme.id, zeta.id, None][n % 3],
                owner_id=users["sales"].id if n % 5 else users["admin"].id,
                last_activity_at=None if n % 3 == 0 else moment + timedelta(days=n % 4),
                custom=None if n % 4 == 1 else {"score": n % 3},
            )
        )
    db.session.commit()
    return made


def _ident(row):
    return getattr(row, "contact", row).id


def _read(service, link, **args):
    return service.list_page(per_page=PER_PAGE, page=link.page or 1, cursor=link.cursor, **args)


def _forwards(service, **args):
    page = service.list_page(per_page=PER_PAGE, **args)
    seen, numbers = [_ident(r) for r in page.items], [page.page]
    while page.next_link is not None:
        page = _read(service, page.next_link, **args)
        seen += [_ident(r) for r in page.items]
        numbers.append(page.page)
    return seen, numbers, page


def _backwards(service, last, **args):
    page = _read(service, last, **args)
    seen = [_ident(r) for r in page.items]
    while page.prev_link is not None:
        page = _read(service, page.prev_link, **args)
        seen = [_ident(r) for r in page.items] + seen
    return seen


SORTS = ["name", "-name", "email", "-email", "company", "-company", "last_activity", "-last_activity"]
SORTS += ["-deals", "status", "cf_score", "-cf_score", "-created_at"]


@pytest.mark.parametrize("sort", SORTS)
def test_cursor_pages_walk_the_whole_order_both_ways(bounded, admin, contacts, sort):
    service = ContactService(admin)
    everything = [_ident(r) for r in service.list_page(sort=sort, per_page=100).items]
    assert len(everything) == len(set(everything)) == 20
    seen, numbers, last = _forwards(service, sort=sort)
    assert seen == everything
    assert numbers == list(range(1, 8))  # the cursors carry the page number they lead to
    assert not last.has_next and last.more and last.total == BOUND
    first = service.list_page(sort=sort, per_page=PER_PAGE)
    assert first.last_link is not None and first.last_link.cursor == Cursor("last", sort)
    assert _backwards(service, first.last_link, sort=sort) == everything


def test_filtered_and_mine_lists_page_by_cursor_over_the_filtered_set(bounded, admin, users, contacts):
    service = ContactService(factories.actor_for(users["sales"]))
    spec = parse_filter({"f": ["city.equals.Paris"]}, service.filter_fields())
    args = {"sort": "email", "filter_spec": spec, "scope": "mine"}
    everything = [_ident(r) for r in service.list_page(per_page=100, **args).items]
    expected = {c.id for c in contacts if c.city == "Paris" and c.owner_id == users["sales"].id}
    assert set(everything) == expected and len(everything) > 2 * PER_PAGE
    seen, _, _ = _forwards(service, **args)
    assert seen == everything
    first = service.list_page(per_page=PER_PAGE, **args)
    assert _backwards(service, first.last_link, **args) == everything


def test_activities_page_by_cursor_with_null_due_dates(bounded, org, users, admin):
    due = datetime(2026, 4, 1, tzinfo=UTC)
    for n in range(11):
        factories.make_activity(org, owner_id=users["admin"].id, due_at=None if n % 3 == 0 else due)
    db.session.commit()
    service = ActivityService(admin)
    for sort in ("due", "-due"):
        everything = [a.id for a in service.list_page(sort=sort, per_page=100).items]
        seen = []
        page = service.list_page(sort=sort, per_page=PER_PAGE)
        while True:
            seen += [a.id for a in page.items]
            if page.next_link is None:
                break
            page = service.list_page(
                sort=sort, per_page=PER_PAGE, page=page.next_link.page or 1, cursor=page.next_link.cursor
            )
        assert seen == everything and len(everything) == 11


def test_exact_totals_up_to_the_bound_keep_numbered_pages(admin, contacts):
    page = ContactService(admin).list_page(per_page=PER_PAGE, page=7)
    assert (page.total, page.more, page.pages, page.page, len(page.items)) == (20, False, 7, 7, 2)
    assert page.prev_link.page == 6 and page.next_link is None and page.last_link is None
    assert ContactService(admin).list_page(per_page=PER_PAGE, page=99).page == 7  # past the end: the last


def test_a_deep_page_number_stops_at_the_bound(bounded, admin, contacts):
    """?page=N reads by OFFSET only while the page starts within the count bound; deeper numbers show
    the deepest numbered page, whose Next link carries a cursor."""
    page = ContactService(admin).list_page(per_page=PER_PAGE, page=5)
    assert (page.page, page.more, page.total) == (2, True, BOUND)
    assert page.next_link.cursor is not None and page.next_link.cursor.page == 3


def test_a_list_filtered_on_a_custom_field_counts_to_its_own_bound(app, monkeypatch, admin, contacts):
    """A custom field's condition is tested on each row read from the table, so such a list counts
    only to LIST_CUSTOM_COUNT_BOUND, then says "more than"; the same list filtered on a column (or
    sorted by the field, which reads no row to count) counts to LIST_COUNT_BOUND."""
    monkeypatch.setitem(app.config, "LIST_COUNT_BOUND", 8)
    monkeypatch.setitem(app.config, "LIST_CUSTOM_COUNT_BOUND", 4)
    service = ContactService(admin)
    by_score = parse_filter({"f": ["cf_score.between.0,2"]}, service.filter_fields())
    matching = [c for c in contacts if c.custom is not None]
    assert len(matching) == 15
    page = service.list_page(filter_spec=by_score, per_page=PER_PAGE)
    assert (page.total, page.more, len(page.items)) == (4, True, PER_PAGE)
    seen, _, last = _forwards(service, filter_spec=by_score)
    assert sorted(seen) == sorted(c.id for c in matching) and not last.has_next  # every row, by cursor
    assert (service.list_page(sort="cf_score", per_page=PER_PAGE).total, page.pages) == (8, 2)
    by_city = parse_filter({"f": ["city.equals.Paris"]}, service.filter_fields())
    assert (service.list_page(filter_spec=by_city, per_page=PER_PAGE).total, page.more) == (8, True)
    monkeypatch.setitem(app.config, "LIST_CUSTOM_COUNT_BOUND", 15)  # exactly the matches: counted
    exact = service.list_page(filter_spec=by_score, per_page=PER_PAGE)
    assert (exact.total, exact.more) == (8, True)  # never past LIST_COUNT_BOUND
    monkeypatch.setitem(app.config, "LIST_COUNT_BOUND", 100)
    exact = service.list_page(filter_spec=by_score, per_page=PER_PAGE)
    assert (exact.total, exact.more) == (15, False)


def test_a_list_filtered_on_a_substring_counts_to_the_search_bound(app, monkeypatch, client, login, admin, contacts):
    """A "contains" or "ends with" filter decides each row on its text (no index range finds its rows),
    so its list counts only to LIST_SEARCH_COUNT_BOUND, pages on by cursor past it, and still reaches
    every match; "equals" and "starts with" count to LIST_COUNT_BOUND."""
    monkeypatch.setitem(app.config, "LIST_SEARCH_COUNT_BOUND", 4)
    service = ContactService(admin)
    in_paris = [c.id for c in contacts if c.city == "Paris"]
    for condition in ("city.contains.ari", "city.endsWith.ris"):
        spec = parse_filter({"f": [condition]}, service.filter_fields())
        page = service.list_page(filter_spec=spec, per_page=PER_PAGE)
        assert (page.total, page.more, len(page.items)) == (4, True, PER_PAGE), condition
        seen, _, last = _forwards(service, filter_spec=spec)
        assert sorted(seen) == sorted(in_paris) and not last.has_next, condition
    for condition in ("city.equals.Paris", "city.startsWith.Par"):
        spec = parse_filter({"f": [condition]}, service.filter_fields())
        page = service.list_page(filter_spec=spec, per_page=PER_PAGE)
        assert (page.total, page.more) == (len(in_paris), False), condition
    login("admin")
    body = client.get(f"/contacts?per_page={PER_PAGE}&f=city.contains.ari").text
    assert "more than 4 contacts" in body and "1–3 of more than 4" in body


def test_the_pager_of_a_custom_field_filter_says_more_than_its_bound(app, monkeypatch, client, login, contacts):
    monkeypatch.setitem(app.config, "LIST_CUSTOM_COUNT_BOUND", 4)
    login("admin")
    body = client.get(f"/contacts?per_page={PER_PAGE}&f=cf_score.between.0,2").text
    assert "more than 4 contacts" in body and "1–3 of more than 4" in body
    assert "20 contacts" in client.get(f"/contacts?per_page={PER_PAGE}").text


def _link(body: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]*rel="{rel}"', body)
    return html.unescape(found.group(1)) if found else None


def test_the_pager_follows_cursors_and_says_more_than(bounded, client, login, contacts):
    login("admin")
    body = client.get(f"/contacts?per_page={PER_PAGE}").text
    assert "more than 5 contacts" in body and "1–3 of more than 5" in body
    url, pages = _link(body, "next"), 1
    assert url == f"/contacts?per_page={PER_PAGE}&page=2"
    names = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text[:300]
        pages += 1
        names.append(url)
        url = _link(response.text, "next")
    assert pages == 7 and "cursor=" in names[-1] and "Page 7" in response.text
    assert "19–20 of more than 5" in response.text
    last = client.get(_link(body, "last"), headers=HX)
    assert last.status_code == 200 and "<html" not in last.text and 'id="contact-table"' in last.text
    assert "Last page" in last.text and _link(last.text, "next") is None and _link(last.text, "prev")


def test_a_forged_or_garbled_cursor_is_a_400_and_another_sorts_cursor_the_first_page(app, client, login, contacts):
    login("admin")
    for junk in ("abc", "W10.forged", "x" * 300):
        response = client.get(f"/contacts?cursor={junk}")
        assert response.status_code == 400 and "page link is broken or out of date" in response.text, response.text
    assert client.get(f"/contacts?cursor={'x' * 3000}").status_code == 400  # too long to be one
    token = encode_cursor(Cursor("next", "name", ("Smith", "Ann", contacts[0].id), 4), app.secret_key)
    assert decode_cursor(token, app.secret_key).values[2] == contacts[0].id
    payload, signature = token.rsplit(".", 1)
    tampered = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    assert client.get(f"/contacts?cursor={tampered}").status_code == 400
    other = client.get(f"/contacts?sort=email&cursor={token}")  # made for the name order: ignored
    assert other.status_code == 200 and "1–20 of 20" in other.text
    assert client.get(f"/contacts?cursor={token}").status_code == 200


def test_sort_size_search_and_export_links_drop_the_cursor(bounded, client, login, contacts):
    login("admin")
    deep = _link(client.get(f"/contacts?per_page={PER_PAGE}&page=2").text, "next")
    assert "cursor=" in deep
    body = client.get(deep).text
    assert 'rel="next"' in body
    for href in re.findall(r'href="([^"]*)"', body):
        if "export.csv" in href or "sort=" in href or "per_page=10" in href:
            assert "cursor=" not in href, href
    state = re.search(r"<div hidden data-list-state>(.*?)</div>", body, re.S).group(1)
    assert "cursor" not in state  # the search box and the filter builder start from the first page


def _budget(client, url, count_queries):
    with count_queries() as queries:
        response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    return queries.count


def test_a_deep_page_costs_what_the_first_page_costs(bounded, client, login, contacts, count_queries):
    login("admin")
    first = f"/contacts?per_page={PER_PAGE}"
    body = client.get(first).text
    deep = _link(client.get(_link(body, "next")).text, "next")
    last = _link(body, "last")
    budgets = [_budget(client, url, count_queries) for url in (first, deep, last, first + "&sort=-cf_score")]
    assert budgets == [4 + LOGIN_STATEMENTS] * 4


def _rows_read(plan: dict) -> int:
    """Rows the scans of a plan produced or threw away, leaving out InitPlans (the bounded count)."""
    if plan.get("Parent Relationship") == "InitPlan":
        return 0
    own = 0
    if "Scan" in plan["Node Type"]:
        own = (plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"]
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


# The list's sort -> its keys in SQL (PostgreSQL puts NULLs last when ascending, as the list does).
DEPTH_SORTS = {"name": "last_name, first_name, id", "last_activity": "last_activity_at, id"}


@pytest.mark.postgres_only
@pytest.mark.parametrize("sort", list(DEPTH_SORTS))
def test_postgres_reads_as_few_rows_for_a_deep_page_as_for_a_shallow_one(org, admin, sort):
    """The name order (NOT NULL keys) and the last activity (NULLs after every value: read as two
    ranges) both seek: the page statement reads about as many rows at depth 3,000 as at depth 10."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "org_id": org.id,
            "first_name": f"F{n % 37:02}",
            "last_name": f"L{n % 997:04}",
            "email": None,
            "last_activity_at": None if n % 40 == 0 else moment + timedelta(minutes=n % 1500),
        }
        for n in range(4000)
    ]
    db.session.execute(insert(Contact), rows)
    db.session.execute(text("ANALYZE contacts"))
    service = ContactService(admin)
    ordered = db.session.execute(
        text(
            f"SELECT {DEPTH_SORTS[sort]} FROM contacts WHERE org_id = :org AND deleted_at IS NULL "
            f"ORDER BY {DEPTH_SORTS[sort]}"
        ),
        {"org": org.id},
    ).all()
    assert len(ordered) == 4000

    def rows_read(**page_args) -> int:
        captured: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            captured.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            page = service.list_page(sort=sort, per_page=25, **page_args)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        start = (page.page - 1) * 25 if page.page > 1 else ordered.index(page_args["cursor"].values) + 1
        assert [c.contact.id for c in page.items] == [row[-1] for row in ordered[start : start + 25]]
        statement, parameters = next((s, p) for s, p in captured if "count(*)" in s)
        raw = db.session.connection().connection.driver_connection.cursor()
        try:
            raw.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            return _rows_read(raw.fetchone()[0][0]["Plan"])
        finally:
            raw.close()

    def after(depth: int) -> Cursor:
        return Cursor("next", sort, tuple(ordered[depth - 1]), None)

    shallow, deep = rows_read(cursor=after(10)), rows_read(cursor=after(3000))
    assert deep <= shallow + 50 and deep < 300, (shallow, deep)
    # The measure sees what an OFFSET costs: the page at the same depth by number reads every row before it.
    assert rows_read(page=121) >= 3000


def test_the_activities_pager_keeps_the_quick_view_in_its_cursor_links(bounded, client, login, org, users):
    for n in range(8):
        factories.make_activity(org, owner_id=users["admin"].id, subject=f"Task {n}")
    db.session.commit()
    login("admin")
    url, seen, urls = f"/activities?view=all&per_page={PER_PAGE}", set(), []
    while url:
        response = client.get(url, headers=HX)
        assert response.status_code == 200 and "<html" not in response.text, response.text[:300]
        seen |= set(re.findall(r"Task (\d+)<", response.text))
        url = _link(response.text, "next")
        assert url is None or "view=all" in url
        urls.append(url)
    assert seen == {str(n) for n in range(8)} and any("cursor=" in u for u in urls if u)

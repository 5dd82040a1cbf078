"""`make bench` rewrites only the generated section of docs/benchmarks.md, counts the fragments each
page loads on arrival into its row, and draws the growth chart (bench/run.py)."""

from xml.etree import ElementTree

import pytest
import requests

from bench.load import BareClient, sign_in
from bench.run import (
    BEGIN_MARK,
    DEFAULT_OUTPUT,
    END_MARK,
    FRAGMENT_HEADERS,
    SQLITE_BEGIN_MARK,
    SQLITE_END_MARK,
    UUID_IN_URL,
    Result,
    arrival_fragments,
    discover_fragments,
    fires_on_arrival,
    growth_chart_svg,
    report,
    write_report,
)
from crm_web.extensions import db
from tests import factories


def test_the_generated_table_replaces_only_what_is_between_the_markers(tmp_path):
    current = DEFAULT_OUTPUT.read_text()
    assert current.count(BEGIN_MARK) == 1 and current.count(END_MARK) == 1
    assert current.index(BEGIN_MARK) < current.index(END_MARK)
    copy = tmp_path / "benchmarks.md"
    copy.write_text(current)
    write_report(copy, "| page | new table |\n")
    head, rest = current.split(BEGIN_MARK)
    tail = rest.split(END_MARK)[1]
    assert copy.read_text() == f"{head}{BEGIN_MARK}\n| page | new table |\n{END_MARK}{tail}"


def test_seed_only_seeds_each_size_and_measures_nothing(tmp_path, monkeypatch):
    from bench import run

    seeded, measured = [], []
    monkeypatch.setattr(
        run, "ensure_database", lambda server, size, *, fresh, prefix=None: seeded.append((size, fresh, prefix))
    )
    monkeypatch.setattr(run, "measure", lambda *args, **kwargs: measured.append(args))
    output = tmp_path / "bench.md"
    assert run.main(["--sizes", "S,M", "--seed-only", "--fresh", "--db-prefix", "p", "--output", str(output)]) == 0
    assert seeded == [("S", True, "p"), ("M", True, "p")]
    assert measured == []
    assert not output.exists()


def test_the_sqlite_table_has_its_own_section(tmp_path):
    current = DEFAULT_OUTPUT.read_text()
    assert current.count(SQLITE_BEGIN_MARK) == 1 and current.count(SQLITE_END_MARK) == 1
    copy = tmp_path / "benchmarks.md"
    copy.write_text(current)
    write_report(copy, "| page | sqlite table |\n", SQLITE_BEGIN_MARK, SQLITE_END_MARK)
    head, rest = current.split(SQLITE_BEGIN_MARK)
    tail = rest.split(SQLITE_END_MARK)[1]
    assert copy.read_text() == f"{head}{SQLITE_BEGIN_MARK}\n| page | sqlite table |\n{SQLITE_END_MARK}{tail}"
    assert BEGIN_MARK in head  # the PostgreSQL section is untouched


def test_the_bench_adds_its_custom_fields_and_values_once(app, engine_name):
    """bench/run.ensure_custom_fields: 10 fields on contacts and 5 on deals, values of their types on a
    share of the rows (set-based SQL on either engine), and nothing redone on a second run."""
    from sqlalchemy import select, text

    from bench.run import CUSTOM_FIELDS, ensure_custom_fields
    from crm_web.custom_fields import converts
    from crm_web.extensions import db
    from crm_web.models import Contact, Deal
    from crm_web.services.custom_fields import entity_fields, index_name
    from tests import factories

    org = factories.make_org("bench")
    factories.make_user(org, role="admin")
    for _ in range(60):
        factories.make_contact(org)
    for _ in range(20):
        factories.make_deal(org)
    sqlite = engine_name == "sqlite"
    assert ensure_custom_fields(org, sqlite=sqlite) == ["contacts", "deals"]
    db.session.expire_all()
    for model, table in ((Contact, "contacts"), (Deal, "deals")):
        fields = entity_fields(db.session, org.id, table[:-1])
        assert [(cf.label, cf.type) for cf in fields] == [(label, kind) for label, kind, _o, _s in CUSTOM_FIELDS[table]]
        by_key = {cf.key: cf for cf in fields}
        values = db.session.scalars(select(model.custom).where(model.org_id == org.id)).all()
        assert all(values)
        for custom in values:
            assert set(custom) <= set(by_key)
            assert all(converts(value, by_key[key]) for key, value in custom.items()), custom
            # Options are the field's own ids.
            for key, value in custom.items():
                if by_key[key].type == "select":
                    assert by_key[key].option(value) is not None
        # Every field with a share below 1 leaves some rows without a value; a share of 1 fills all.
        for label, _kind, _options, share in CUSTOM_FIELDS[table]:
            key = next(cf.key for cf in fields if cf.label == label)
            have = sum(key in custom for custom in values)
            assert have == len(values) if share == 1 else 0 < have <= len(values)
        if not sqlite:
            names = set(db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}))
            assert {index_name(org.id, cf) for cf in fields} <= names
    before = db.session.scalars(select(Contact.custom).where(Contact.org_id == org.id).order_by(Contact.id)).all()
    assert ensure_custom_fields(org, sqlite=sqlite) == []
    db.session.expire_all()
    assert len(entity_fields(db.session, org.id, "contact")) == 10
    assert (
        db.session.scalars(select(Contact.custom).where(Contact.org_id == org.id).order_by(Contact.id)).all() == before
    )


def test_only_load_revealed_and_intersect_triggers_fire_on_arrival():
    assert fires_on_arrival("load")
    assert fires_on_arrival("revealed")
    assert fires_on_arrival("intersect once")
    assert fires_on_arrival("deals-changed from:body, load")
    assert fires_on_arrival("load[window.ready]")
    assert not fires_on_arrival("load delay:1s")  # a poll that renders itself again
    assert not fires_on_arrival("every 2s")
    assert not fires_on_arrival("toggle once")
    assert not fires_on_arrival("input changed delay:300ms, search")
    assert not fires_on_arrival("activities-changed from:body")
    assert not fires_on_arrival("")


def test_arrival_fragments_are_read_from_the_html_in_order_and_unescaped():
    html = """
    <section hx-get="/companies/1/contacts" hx-trigger="load" hx-swap="outerHTML"></section>
    <div hx-get="/saved-views/contacts/tabs?current=a&amp;x=1" hx-trigger="load"></div>
    <div hx-get="/live/poll" hx-trigger="every 2s"></div>
    <form hx-get="/search" hx-trigger="input changed delay:200ms"></form>
    <div hx-post="/deals/1/move" hx-trigger="load"></div>
    <div hx-get="/companies/1/contacts" hx-trigger="load"></div>
    <div hx-trigger="load"></div>
    """
    assert arrival_fragments(html) == ["/companies/1/contacts", "/saved-views/contacts/tabs?current=a&x=1"]


def test_fragments_that_load_fragments_are_followed_once_each():
    pages = {
        "/a": '<div hx-get="/b" hx-trigger="load"></div><div hx-get="/a" hx-trigger="load"></div>',
        "/b": '<div hx-get="/a" hx-trigger="load"></div>',
        "/c": "<p>done</p>",
    }
    requested = []

    def get(url):
        requested.append(url)
        return pages[url]

    page = '<div hx-get="/a" hx-trigger="load"></div><div hx-get="/c" hx-trigger="revealed"></div>'
    assert discover_fragments(get, page) == ["/a", "/c", "/b"]
    assert requested == ["/a", "/c", "/b"]
    assert discover_fragments(get, "<p>no fragment</p>") == []


def test_the_bench_finds_that_list_and_detail_pages_arrive_whole(client, login, org):
    login("admin")
    company = factories.make_company(org, name="Arrival Ltd")
    factories.make_contact(org, primary_company_id=company.id)
    db.session.commit()
    # A list renders its saved-view tabs itself, on a cold cache too: nothing loads after it.
    for url in ("/contacts", "/deals/board"):
        page = client.get(url).get_data(as_text=True)
        assert 'id="view-tabs"' in page and arrival_fragments(page) == [], url
    # A detail page arrives whole: its contacts and timeline are in it, nothing loads after it.
    page = client.get(f"/companies/{company.id}").get_data(as_text=True)
    assert 'id="company-contacts"' in page and 'id="activity-timeline"' in page
    assert discover_fragments(lambda url: client.get(url, headers=FRAGMENT_HEADERS).get_data(as_text=True), page) == []


def test_the_served_client_carries_the_session_and_the_cookies_it_is_given(live_server):
    with requests.Session() as session:
        sign_in(session, live_server, "admin@example.com", "demo")
        signed_in = BareClient(live_server, session.cookies.get_dict())
    status, html = signed_in.get("/contacts", {"Accept": "text/html"})
    assert status == 200 and 'id="contact-table"' in html
    status, html = signed_in.get("/contacts", FRAGMENT_HEADERS)
    assert status == 200 and "<html" not in html
    stranger = BareClient(live_server, {})
    assert stranger.get("/contacts", {})[0] == 302
    assert stranger.get("/login", {})[0] == 200 and "session" in stranger.cookies  # the one the login page set


def _results(sizes, *, served=()):
    out = {}
    for n, size in enumerate(sizes, start=1):
        out[size] = [
            Result("dashboard", "/", 5.0 * n, 6.0 * n, 2, 200),
            Result("company detail", "/companies/1", 8.0 * n, 9.0 * n, 8, 200, fragments=["/companies/1/contacts"]),
            Result("A & <B>", "/b", 1.0, 2.0, 3, 200),
            Result("not here", "(x not built)"),
        ]
        if size in served:
            for result in out[size][:3]:
                result.served_median_ms, result.served_p95_ms, result.served_status = 10.0, 40.0 * n, 200
    return out


def test_the_growth_chart_is_an_svg_with_a_bar_per_page_and_size():
    svg = growth_chart_svg(_results(["S", "M", "L"], served=["L"]), "p95 at S, M, L")
    root = ElementTree.fromstring(svg)  # well-formed, names escaped
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    bars = [rect for rect in root.iter(f"{ns}rect") if rect.find(f"{ns}title") is not None]
    assert len(bars) == 3 * 3  # three built pages, three sizes; the missing page has none
    titles = [bar.find(f"{ns}title").text for bar in bars]
    assert "company detail, L: p95 27.0 ms" in titles and "A & <B>, S: p95 2.0 ms" in titles
    diamonds = [path for path in root.iter(f"{ns}path") if path.find(f"{ns}title") is not None]
    assert len(diamonds) == 3 and "HTTP p95 120.0 ms" in diamonds[0].find(f"{ns}title").text
    widths = {bar.find(f"{ns}title").text: float(bar.get("width")) for bar in bars}
    assert widths["dashboard, L: p95 18.0 ms"] == pytest.approx(3 * widths["dashboard, S: p95 6.0 ms"])


def test_the_report_has_http_columns_where_served_and_names_the_fragments():
    text = report(_results(["S", "L"], served=["L"]), 50, chart="![chart](benchmarks-growth.svg)")
    header = next(line for line in text.splitlines() if line.startswith("| page |"))
    assert header.count("HTTP") == 2 and "S HTTP" not in header and "L HTTP p95" in header
    row = next(line for line in text.splitlines() if line.startswith("| company detail"))
    assert "(+1 on arrival)" in row and "HTTP p95 < 35 ms **MISS**" in row
    assert "- company detail: `/companies/1/contacts`" in text
    assert UUID_IN_URL.sub("<id>", "/a?company=e93b1137-6f19-42ab-b17b-a15ebd0923e5") == "/a?company=<id>"
    assert "![chart](benchmarks-growth.svg)" in text
    assert "Misses: dashboard, company detail, A & <B>" in text


def test_each_size_is_judged_against_its_own_targets():
    """L: a page under 100 ms, a search under 50 ms, served under 35 ms; XL: everything under 150 ms;
    statements the same at every size."""

    def page(name, p95, *, search=False, statements=5, served=None):
        result = Result(name, "/x", p95 / 2, p95, statements, 200, search=search)
        if served is not None:
            result.served_median_ms, result.served_p95_ms, result.served_status = served / 2, served, 200
        return result

    results = {
        "S": [page("list", 10), page("search", 10, search=True), page("board", 10, statements=4)],
        "L": [page("list", 90, served=30), page("search", 60, search=True, served=30), page("board", 40, served=36)],
        "XL": [page("list", 140), page("search", 120, search=True), page("board", 151)],
    }
    rows = {line.split(" | ")[0][2:]: line for line in report(results, 50).splitlines() if line.startswith("| ")}
    assert rows["list"].endswith("L p95 < 100 ms ok; L HTTP p95 < 35 ms ok; XL p95 < 150 ms ok; statements constant |")
    assert "L p95 < 50 ms **MISS**; L HTTP p95 < 35 ms ok; XL p95 < 150 ms ok" in rows["search"]
    assert "L HTTP p95 < 35 ms **MISS**; XL p95 < 150 ms **MISS**; **statements grow**" in rows["board"]
    assert "Misses: search, board" in report(results, 50)
    sqlite = report({"S": [page("list", 90)], "M": [page("list", 101)]}, 50, sqlite=True)
    assert "S p95 < 100 ms ok; M p95 < 100 ms **MISS**; statements constant" in sqlite


def test_the_profile_splits_pages_and_fragments_into_sql_and_template_time(app, client, login, org):
    """bench.profile's clock: statements and their time from the engine, template time from both
    Flask's renders and jinja2-fragments' block renders (a fragment is rendered as a block)."""
    from bench.profile import Split, _Clock, _listen

    login("admin")
    company = factories.make_company(org, name="Profiled Ltd")
    factories.make_contact(org, primary_company_id=company.id)
    db.session.commit()
    clock = _Clock()
    stop = _listen(app, db.engine, clock)
    try:
        for url, headers in ((f"/companies/{company.id}", {}), (f"/companies/{company.id}/contacts", FRAGMENT_HEADERS)):
            clock.split = Split()
            assert client.get(url, headers=headers).status_code == 200
            assert clock.split.statements >= 2 and clock.split.sql > 0, url
            assert clock.split.template > 0 and clock.render_depth == 0, url
    finally:
        stop()

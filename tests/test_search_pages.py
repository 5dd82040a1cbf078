"""Pages of a searched list (BaseService._searched_page): read best first in steps, each page the
one ranking every match would give; the matches counted up to LIST_SEARCH_COUNT_BOUND, then "more
than"; a typo search runs the same statements whether or not its corrections have a wider tier."""

from __future__ import annotations

import pytest

from crm_web.services.companies import CompanyService
from crm_web.services.contacts import ContactService
from tests import factories
from tests.conftest import LOGIN_STATEMENTS
from tests.test_search import make_people

# Every rank of "hill": names that are it or start with it (0, 1), people called Hill (2), a word
# of the name starting with it (3), a match elsewhere (4: the email).
PEOPLE = (
    "Hill Ng",
    "Hillary Stone",
    "Hiller Abbot",
    "Ann Hill",
    "Zoe Hill",
    "Bea Hill",
    "Carl Hill",
    "Dora Hill",
    "Eve Hill",
    "Max Hillsdale",
    "Al Hillman",
    "Tom Churchill",
    "Sue Thornhill",
)


def _names(page):
    return [row.contact.full_name for row in page.items]


@pytest.fixture
def hills(org):
    make_people(org, *PEOPLE)
    make_people(org, "Pat Quinn", email="pat@hillside.example")
    make_people(org, "Nobody Else")


@pytest.mark.parametrize("per_page", [1, 2, 3, 5])
def test_every_page_of_a_search_is_the_full_ranking_cut_in_pages(hills, users, per_page):
    """Reading page after page gives each match once, in the order ranking them all gives (the
    export ranks every match in one statement)."""
    service = ContactService(factories.actor_for(users["admin"]))
    ranked = [row.contact.full_name for row in service.export_rows(q="hill")]
    assert ranked[:3] == ["Hiller Abbot", "Hill Ng", "Hillary Stone"]  # starts with it, by last name
    assert ranked[3:9] == ["Ann Hill", "Bea Hill", "Carl Hill", "Dora Hill", "Eve Hill", "Zoe Hill"]
    assert len(ranked) == 14
    read, number = [], 1
    while True:
        page = service.list_page(q="hill", per_page=per_page, page=number)
        assert page.page == number and page.total == 14 and not page.more
        read += _names(page)
        if not page.has_next:
            break
        number += 1
    assert read == ranked
    assert number == -(-14 // per_page)


def test_a_sorted_search_pages_in_the_sort_s_order(hills, users):
    service = ContactService(factories.actor_for(users["admin"]))
    ranked = [row.contact.full_name for row in service.export_rows(q="hill", sort="-name")]
    read = [
        name
        for number in (1, 2, 3)
        for name in _names(service.list_page(q="hill", sort="-name", per_page=5, page=number))
    ]
    assert read == ranked, (read, ranked)
    assert len(read) == 14, read


def test_a_search_of_many_matches_counts_to_its_bound_and_says_more_than(app, monkeypatch, client, login, hills, users):
    monkeypatch.setitem(app.config, "LIST_SEARCH_COUNT_BOUND", 5)
    service = ContactService(factories.actor_for(users["admin"]))
    first = service.list_page(q="hill", per_page=2)
    assert (first.total, first.more, first.numbered) == (5, True, 3)
    assert _names(first) == ["Hiller Abbot", "Hill Ng"]
    last = service.list_page(q="hill", per_page=2, page=99)  # clamped to the last numbered page
    assert (last.page, _names(last)) == (3, ["Bea Hill", "Carl Hill"])
    assert last.next_link is None and last.last_link is None  # no cursor reads past a search's bound
    few = service.list_page(q="hillary", per_page=2)
    assert (few.total, few.more) == (1, False)
    login("admin")
    text = client.get("/contacts?q=hill&per_page=2").text
    assert "more than 5" in text
    assert "cursor=" not in text and "Narrow the search" not in text  # page 1 links to the next
    assert "Narrow the search to see the rest." in client.get("/contacts?q=hill&per_page=2&page=3").text
    assert "more than" not in client.get("/contacts?q=hillary").text


def test_more_people_of_the_surname_than_the_bound_is_more_than_only_within_the_other_criteria(
    app, monkeypatch, hills, users
):
    """Six Hills pass a bound of 5 (the surname index alone says "more than"); "mine" keeps three."""
    from sqlalchemy import select

    from crm_web.extensions import db
    from crm_web.models import Contact

    monkeypatch.setitem(app.config, "LIST_SEARCH_COUNT_BOUND", 5)
    mine = db.session.scalars(select(Contact).where(Contact.last_name == "Hill").order_by(Contact.first_name)).all()
    for contact in mine[:3]:
        contact.owner_id = users["admin"].id
    db.session.commit()
    service = ContactService(factories.actor_for(users["admin"]))
    assert (service.list_page(q="hill").total, service.list_page(q="hill").more) == (5, True)
    page = service.list_page(q="hill", scope="mine", per_page=2)  # a page of Hills: the total is counted
    assert (page.total, page.more) == (3, False)
    assert _names(page) == ["Ann Hill", "Bea Hill"]


def test_the_search_bound_never_passes_the_list_bound(app, monkeypatch, hills, users):
    monkeypatch.setitem(app.config, "LIST_COUNT_BOUND", 4)
    page = ContactService(factories.actor_for(users["admin"])).list_page(q="hill", per_page=2)
    assert (page.total, page.more) == (4, True)


def test_a_search_without_surnames_pages_the_same_way(org, users):
    for name in ("Acme", "Acme Labs", "Big Acme", "Northacme", "Zeta"):
        factories.make_company(org, name=name)
    service = CompanyService(factories.actor_for(users["admin"]))
    pages = [service.list_page(q="acme", per_page=1, page=number) for number in (1, 2, 3, 4, 5)]
    assert [page.items[0].company.name for page in pages[:4]] == ["Acme", "Acme Labs", "Big Acme", "Northacme"]
    assert (pages[4].page, pages[4].total) == (4, 4)  # past the end: the last page


def test_a_search_page_costs_the_same_on_any_page_and_for_any_number_of_matches(
    client, login, org, users, count_queries, engine_name
):
    login("admin")

    def budget(url):
        with count_queries() as queries:
            assert client.get(url).status_code == 200
        return queries.count

    urls = ["/contacts?q=hill&per_page=2", "/contacts?q=hill&per_page=2&page=3", "/contacts?q=hill&sort=-name"]
    make_people(org, *PEOPLE[:7])
    client.get("/contacts")  # the first reads the saved-view tabs and caches them
    few = [budget(url) for url in urls]
    make_people(org, *PEOPLE[7:])
    make_people(org, *(f"Hill{i} Ng" for i in range(40)), *(f"Kid{i} Hill" for i in range(40)))
    assert [budget(url) for url in urls] == few
    # the page with its bounded total, then its rows; on PostgreSQL the EXISTS that picks the tier
    assert set(few) == {4 + LOGIN_STATEMENTS + (engine_name == "postgresql")}


@pytest.mark.postgres_only
def test_a_typo_search_runs_the_same_statements_whether_or_not_a_wider_tier_exists(org, users, count_queries):
    """'davd smith': "dave" is the closest correction of "davd"; with a Dave in the vocabulary the
    corrections have a wider tier ("david" too), which the statements choose themselves."""
    service = ContactService(factories.actor_for(users["admin"]))
    make_people(org, "David Smith")
    with count_queries() as without_wider:
        page = service.list_page(q="davd smith")
    assert _names(page) == ["David Smith"]
    make_people(org, "Dave Jones")  # now "dave" is closer: the closest tier finds no Dave Smith
    with count_queries() as wider:
        page = service.list_page(q="davd smith")
    assert _names(page) == ["David Smith"] and page.total == 1
    make_people(org, "Dave Smith")  # the closest tier finds someone: the wider one is not used
    with count_queries() as closest:
        page = service.list_page(q="davd smith")
    assert _names(page) == ["Dave Smith"] and page.total == 1
    assert without_wider.count == wider.count == closest.count == 5, wider  # EXISTS, lookup, page, rows, tags


@pytest.mark.postgres_only
def test_the_exact_words_are_found_wherever_they_are_before_any_typo_lookup(hills, users, count_queries):
    """The EXISTS that decides the typo tier probes names and surnames first, then the words anywhere:
    a word found only in an email still means the exact words stand (no vocabulary lookup)."""
    service = ContactService(factories.actor_for(users["admin"]))
    for q, found in (("hillside", ["Pat Quinn"]), ("hillary", ["Hillary Stone"]), ("thornhill", ["Sue Thornhill"])):
        with count_queries() as queries:
            page = service.list_page(q=q)
        assert _names(page) == found
        assert queries.count == 4, queries  # EXISTS, page, rows, tags: no lookup
    with count_queries() as queries:
        assert _names(service.list_page(q="thornhlil")) == ["Sue Thornhill"]  # no row has it: corrected
    assert queries.count == 5, queries

"""Text search in two tiers (services/text_search.py): the exact words first, ranked by how the name
begins; on PostgreSQL, when no row has the exact words, the words corrected against the organisation's
vocabulary stand in for them, in the global search as in the lists."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, func, select, text

from crm_web.extensions import db
from crm_web.models import Deal, SearchWord
from crm_web.services.companies import CompanyService
from crm_web.services.contacts import ContactService
from crm_web.services.leads import LeadService
from crm_web.services.search import SearchService
from crm_web.services.text_search import correct_spelling, edit_distance, search_key, search_settings, search_terms
from crm_web.services.trash import TrashRef, TrashService
from tests import factories
from tests.conftest import LOGIN_STATEMENTS


def contact_names(user, q):
    return [row.contact.full_name for row in ContactService(factories.actor_for(user)).list_page(q=q).items]


def global_contacts(user, q):
    groups = {group.kind: group for group in SearchService(factories.actor_for(user)).search(q)}
    return [hit.label for hit in groups["contact"].hits] if "contact" in groups else []


def make_people(org, *names, email=None):
    for name in names:
        first, last = name.split(" ", 1)
        factories.make_contact(
            org, first_name=first, last_name=last, email=email or f"{first}.{last}@example.com".lower().replace(" ", "")
        )


def test_one_or_two_letters_match_the_start_of_a_word(org, users):
    """Two letters hold no trigram, so they match where users mean them (and an index can serve it)."""
    make_people(org, "John Smith", "Mary Jones", "Major Tom")
    for q in ("jo", "JO"):
        assert sorted(contact_names(users["admin"], q)) == ["John Smith", "Mary Jones"]
        assert global_contacts(users["admin"], q) == ["John Smith", "Mary Jones"]
    assert contact_names(users["admin"], "ajo") == ["Major Tom"]  # three letters: anywhere


def test_exact_matches_rank_by_how_the_name_begins(org, users):
    make_people(org, "Elton Johnson", "Ajohnny Bee", "John Zed", "Bo Kim")
    factories.make_contact(org, first_name="Ann", last_name="Lee", email="john@example.com")
    expected = ["John Zed", "Elton Johnson", "Ajohnny Bee", "Ann Lee"]  # starts, a word starts, inside, email
    assert contact_names(users["admin"], "john") == expected
    assert global_contacts(users["admin"], "john") == expected


def test_names_with_accents_and_other_alphabets_are_found_as_typed(org, users):
    """SQLite folds only A-Z: the query goes to LIKE as typed, so "Émi" finds "Émile" there too."""
    make_people(org, "Émile Zola", "Иван Петров")
    for q, name in [("Émi", "Émile Zola"), ("zola", "Émile Zola"), ("Иван", "Иван Петров"), ("Пет", "Иван Петров")]:
        assert contact_names(users["admin"], q) == [name], q
        assert global_contacts(users["admin"], q) == [name], q


def test_a_name_that_is_the_query_comes_first_even_without_a_last_name(org, users):
    factories.make_contact(org, first_name="John", last_name="")
    make_people(org, "Johnny Cash", "Johnson Abe")
    assert contact_names(users["admin"], "john")[0].strip() == "John"
    assert global_contacts(users["admin"], "JOHN")[0] == "John"


@pytest.mark.postgres_only
def test_a_global_search_corrects_typos_only_when_no_row_has_the_words(org, users):
    make_people(org, "Adrian Silva", "Ana Silvia")
    assert global_contacts(users["admin"], "silav") == ["Adrian Silva"]  # one swap ("silvia" is three edits)
    assert global_contacts(users["admin"], "silva") == ["Adrian Silva"]  # found as typed: nothing corrected
    make_people(org, "Silavan Roy")
    assert global_contacts(users["admin"], "silav") == ["Silavan Roy"]  # a name has it: no corrections


@pytest.mark.postgres_only
def test_a_list_search_falls_back_to_typos_only_when_no_row_has_the_words(org, users):
    make_people(org, "Adrian Silva", "Ana Silvia")
    assert contact_names(users["admin"], "silva") == ["Adrian Silva"]
    assert contact_names(users["admin"], "silav") == ["Adrian Silva"]  # "silvia" is three edits away
    assert contact_names(users["admin"], "jonh smiht") == []
    make_people(org, "John Smith")
    assert contact_names(users["admin"], "jonh smiht") == ["John Smith"]


def test_names_that_start_with_the_query_come_first_in_alphabetical_order(org, users):
    """With LIMIT of them the global search reads them from the name index and ranks nothing else; with
    fewer it ranks every match. Both orders agree: the name is the query, then starts with it (case
    ignored), then the rest."""
    make_people(org, "Elton Johnson", "john adams", "JOHN BROWN", "John Zed", "Johnny Cash")
    factories.make_contact(org, first_name="John", last_name="")
    assert global_contacts(users["admin"], "john") == [
        "John",
        "john adams",
        "JOHN BROWN",
        "John Zed",
        "Johnny Cash",
    ]  # five start with it: Elton waits
    assert global_contacts(users["admin"], "johnn")[0] == "Johnny Cash"  # inside a name: found as typed
    make_people(org, "Johnathan Moss")
    assert global_contacts(users["admin"], "jo")[:2] == ["John", "john adams"]


def test_the_global_search_costs_the_same_for_one_match_or_many(client, org, login, count_queries):
    """One statement per type (plus, on PostgreSQL, the transaction-local plan setting and the vocabulary
    lookup of words long enough to correct), whatever it finds."""
    login("admin")
    make_people(org, "Zora Quill")
    with count_queries() as one:
        assert "Quill" in client.get("/search?q=zora").get_data(as_text=True)
    make_people(org, *(f"Zora Person{i}" for i in range(30)))
    with count_queries() as many:
        assert "Person0" in client.get("/search?q=zora").get_data(as_text=True)
    assert one.count == many.count == LOGIN_STATEMENTS + 4 + 2 * (db.engine.dialect.name == "postgresql"), many


def test_on_sqlite_the_name_steps_read_the_name_indexes(org, users, engine_name):
    """SQLite has no statistics to plan with: each type's names that start with the query, and the people
    whose last name is the query, are read from its name and surname indexes (migration 0033), not
    found by ranking every row. PostgreSQL's plans: test_search_plans.py."""
    if engine_name != "sqlite":
        return
    make_people(org, "Williams Ray", "Bob Williams")
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("WITH"):
            captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert global_contacts(users["admin"], "williams") == ["Williams Ray", "Bob Williams"]
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    plans = {}
    for statement, parameters in captured:
        kind = statement.split("FROM ", 1)[1].split()[0]
        plans[kind] = " ".join(
            row[3] for row in db.session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert set(plans) == {"contacts", "companies", "leads", "deals"}
    for table, kind in [("contacts", "contact"), ("companies", "company"), ("leads", "lead"), ("deals", "deal")]:
        assert f"SEARCH {table} USING INDEX {kind}_name_order_sqlite_idx" in plans[table], plans[table]
    for table, kind in [("contacts", "contact"), ("leads", "lead")]:
        assert f"SEARCH {table} USING INDEX {kind}_surname_sqlite_idx" in plans[table], plans[table]


@pytest.mark.parametrize("q", ["ab", "a%", "5%", "x\\", "a_ b", "%%"])
def test_like_wildcards_in_short_words_are_searched_for_literally(org, users, q):
    """A short word is judged by its length as typed: escaping "5%" to "5\\%" once gave it the shape
    of a long word without the long word's parameters (a 500, or another query's words reused)."""
    make_people(org, "Ab Normal", "Fifty Percent")
    factories.make_contact(org, first_name="Five", last_name="5% Off", email="five@example.com")
    expected = {"ab": ["Ab Normal"], "5%": ["Five 5% Off"]}.get(q, [])
    assert contact_names(users["admin"], q) == expected
    assert global_contacts(users["admin"], q) == expected


def test_a_statement_built_for_one_organisation_never_answers_for_another(org, other_org, users):
    """The global search builds each statement once per query shape, the organisation a bound parameter."""
    make_people(org, "Walter Ours")
    make_people(other_org, "Walter Theirs")
    theirs = factories.make_user(other_org, role="admin")
    assert global_contacts(users["admin"], "walter") == ["Walter Ours"]
    assert global_contacts(theirs, "walter") == ["Walter Theirs"]
    assert global_contacts(theirs, "ours") == []


# What the search boxes match: every list's SEARCH_COLUMNS, and the deal name (global search only).
SEARCHED = [
    (service.model, expression)
    for service in (ContactService, CompanyService, LeadService)
    for expression in service.SEARCH_COLUMNS
] + [(Deal, Deal.name)]


@pytest.mark.postgres_only
@pytest.mark.parametrize("model, expression", SEARCHED, ids=lambda value: getattr(value, "__name__", str(value)))
def test_every_searched_expression_has_a_trigram_index(org, model, expression):
    """A searched column without one made every search read the whole table (company list: 440 ms at 20k);
    the lead name was once built with a bound space the index never matched."""
    stmt = select(model.id).where(search_key(expression).ilike("%abcd%"))
    connection = db.session.connection()
    connection.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: make any usable index the choice
    compiled = stmt.compile(connection)
    plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).scalars())
    assert "_trgm_idx" in plan, plan


# The typo tier: spelling corrections from the organisation's vocabulary (models/search_word.py).


@pytest.mark.parametrize(
    "a, b, distance",
    [
        ("john", "john", 0),
        ("jonh", "john", 1),
        ("smiht", "smith", 1),
        ("jon", "john", 1),
        ("joan", "john", 1),
        ("silav", "silvia", 3),
        ("mcdnoald", "mcdonald", 1),
        ("", "abc", 3),
        ("ca", "abc", 3),
        ("abc", "", 3),
    ],
)
def test_edit_distance_counts_a_swap_of_neighbours_as_one_edit(a, b, distance):
    assert edit_distance(a, b) == distance == edit_distance(b, a)


def vocabulary(org) -> set[str]:
    return set(db.session.scalars(select(SearchWord.word).where(SearchWord.org_id == org.id)))


@pytest.mark.postgres_only
def test_the_vocabulary_follows_every_write_of_a_searched_name(org, other_org, users):
    """Migration 0012's triggers: words of letters, apostrophes and hyphens, and each hyphenated part,
    3 or more letters, lower case, from every column the searches match; digits split words; an
    update adds its new words; another organisation's words stay its own."""
    factories.make_contact(org, first_name="Seán", last_name="O'Brien-Hale", email="sean.obrien59@mail.example")
    factories.make_contact(org, first_name="Zoë", last_name="D’Arcy")
    factories.make_lead(org, first_name="Li", last_name="Wu", company_name="Initech")
    factories.make_company(org, name="Umbrella Corp", city="Raccoon", website="https://umbrella.example")
    factories.make_deal(org, name="Q4 renewal")
    assert {
        "seán",
        "o'brien-hale",
        "o'brien",
        "hale",
        "zoë",
        "d’arcy",
        "sean",
        "obrien",
        "mail",
        "example",
        "initech",
        "umbrella",
        "corp",
        "raccoon",
        "https",
        "renewal",
    } <= vocabulary(org)
    assert not {"li", "wu", "q", "59", "o", "d"} & vocabulary(org)
    contact = factories.make_contact(org, first_name="Zed", last_name="Quist")
    service = ContactService(factories.actor_for(users["admin"]))
    service.update(contact.id, last_name="Quistorp")
    assert {"quist", "quistorp"} <= vocabulary(org)  # "quist" stays: "quistorp" contains it
    assert "quistorp" not in vocabulary(other_org)
    words = len(vocabulary(org))
    service.update(contact.id, status="customer")  # no searched column: nothing to add
    assert (
        db.session.scalar(select(func.count()).select_from(SearchWord).where(SearchWord.org_id == org.id)) == words
    )  # and each word once


@pytest.mark.postgres_only
def test_the_migration_fills_the_vocabulary_from_existing_rows():
    from flask_migrate import downgrade, upgrade

    from tests.conftest import MIGRATIONS, build_app, postgres_database

    with postgres_database("crm_vocab") as url:
        application = build_app(url)
        with application.app_context():
            org = factories.make_org()
            downgrade(directory=MIGRATIONS, revision="0011_name_order_indexes")
            db.session.execute(
                text(
                    "INSERT INTO contacts (id, org_id, first_name, last_name, email, status, version, "
                    "do_not_contact, created_at, updated_at) VALUES (:id, :org, 'Wilma', "
                    "'Flintstone-Slate', NULL, 'lead', 1, false, now(), now())"
                ),
                {"id": uuid.uuid4(), "org": org.id},
            )
            db.session.commit()
            upgrade(directory=MIGRATIONS)
            assert {"wilma", "flintstone-slate", "flintstone", "slate"} <= vocabulary(org)
            db.session.remove()
            db.engine.dispose()


@pytest.mark.postgres_only
def test_a_typo_finds_what_the_corrected_words_find_ranked_like_an_exact_search(org, users):
    make_people(org, "Bob Smith", "Ann Smith", "Smithers Ray", "John Smith", "Jon Smith", "Jane Smyth")
    # "smiht" -> "smith": the name that starts with it first, then the people called Smith.
    assert global_contacts(users["admin"], "smiht")[:4] == ["Smithers Ray", "Ann Smith", "Bob Smith", "John Smith"]
    assert global_contacts(users["admin"], "smtih")[:2] == ["Smithers Ray", "Ann Smith"]  # a swap inside
    # A swapped letter is likelier than a missing one: "jonh" is "john", not "jon".
    assert global_contacts(users["admin"], "jonh smiht") == ["John Smith"]
    assert contact_names(users["admin"], "jonh smiht") == ["John Smith"]
    assert contact_names(users["admin"], "jhon smith") == ["John Smith"]  # few trigrams in common, one edit
    assert "Jane Smyth" in contact_names(users["admin"], "smyht")
    assert global_contacts(users["admin"], "jno smiht") == []  # three letters are never corrected
    assert contact_names(users["admin"], "xqzvw") == []  # nothing one edit away: no typo tier, nothing found


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "q, found",
    [
        ("o'brein", ["Seán O'Brien"]),
        ("sean o'brein", ["Seán O'Brien"]),
        ("sáen", ["Seán O'Brien"]),
        ("émlie", ["Émile Zola"]),
        ("zo émlie", ["Émile Zola"]),
        # LIKE's wildcards are searched for as typed (nothing has them), then corrected like any letter.
        ("smi%th", ["Smith Jones"]),
        ("smi_h", ["Smith Jones"]),
        ("smi\\th", ["Smith Jones"]),
        ("a b c d e f zloa", []),  # the first six words only, all too short to correct
        ("zloa zloa zloa zloa zloa zloa", ["Émile Zola"]),
    ],
)
def test_odd_words_take_the_typo_path_without_surprises(org, users, q, found):
    make_people(org, "Seán O'Brien", "Émile Zola", "Smith Jones")
    assert contact_names(users["admin"], q) == found
    assert global_contacts(users["admin"], q) == found


@pytest.mark.postgres_only
def test_another_organisations_words_never_correct_a_query(org, other_org, users):
    make_people(other_org, "Ann Smith", "Bob Smith")
    make_people(org, "Ann Jones")
    terms = search_terms("postgresql", "smiht")
    db.session.execute(select(*search_settings()))  # what its callers select before it
    assert correct_spelling(db.session, org.id, terms) is terms  # no "smith" in this organisation's names
    assert global_contacts(users["admin"], "smiht") == [] and contact_names(users["admin"], "smiht") == []


@pytest.mark.postgres_only
def test_a_trashed_contact_keeps_its_words_and_a_purged_one_takes_them_away(org, users):
    """Soft delete keeps the words (the contact can come back); a permanent delete removes the words
    no other row contains, so a purged name leaves nothing behind. Neither is ever found."""
    make_people(org, "Ann Hale")
    gone = factories.make_contact(org, first_name="Wilhelmina", last_name="Hale", email="wilhelmina@hale.example")
    ContactService(factories.actor_for(users["admin"])).delete(gone.id)
    assert "wilhelmina" in vocabulary(org)
    assert global_contacts(users["admin"], "wilhelmnia") == [] and contact_names(users["admin"], "wilhelmnia") == []
    TrashService(factories.actor_for(users["admin"])).purge([TrashRef("contact", gone.id)])
    assert "wilhelmina" not in vocabulary(org) and {"hale", "ann"} <= vocabulary(org)


@pytest.mark.postgres_only
def test_a_rename_drops_the_old_words_and_its_typo_still_finds_the_record(org, users):
    """The vocabulary forgets a fixed typo, and a typo the vocabulary still has (another record's) is
    corrected anyway when no row has it."""
    contact = factories.make_contact(org, first_name="Jonh", last_name="Smith")
    make_people(org, "Jonh Jonhson")
    ContactService(factories.actor_for(users["admin"])).update(contact.id, first_name="John")
    assert "john" in vocabulary(org) and "jonh" in vocabulary(org)  # "Jonhson" still contains it
    assert global_contacts(users["admin"], "jonh smith") == ["John Smith"]
    assert contact_names(users["admin"], "jonh smith") == ["John Smith"]
    other = factories.make_contact(org, first_name="Quenby", last_name="Zed")
    ContactService(factories.actor_for(users["admin"])).update(other.id, first_name="Rowan")
    assert "quenby" not in vocabulary(org) and "rowan" in vocabulary(org)


def test_a_person_whose_last_name_is_the_query_ranks_right_after_names_starting_with_it(org, users):
    make_people(org, "Ann Williamson", "Zed Williams", "Bob Williams", "Williams Ray", "Cy Old-Williams")
    expected = ["Williams Ray", "Bob Williams", "Zed Williams", "Ann Williamson", "Cy Old-Williams"]
    assert global_contacts(users["admin"], "williams") == expected
    assert contact_names(users["admin"], "WILLIAMS") == expected


def test_people_called_the_query_fill_the_five_in_name_order(org, users):
    """Read from the surname index (the ranking stops there): the same five as the list ranks."""
    make_people(org, *(f"Person{i} Williams" for i in range(5, -1, -1)), "Williams Williams", "Williams Ray")
    expected = ["Williams Ray", "Williams Williams", "Person0 Williams", "Person1 Williams", "Person2 Williams"]
    assert global_contacts(users["admin"], "williams") == expected
    assert contact_names(users["admin"], "williams")[:5] == expected


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "q, found",
    [
        ("davd smith", ["David Smith"]),  # "dave" is the closest correction, but only "david" sits by "smith"
        ("davd smiht", ["David Smith"]),  # both words mistyped
        ("dvaid smith", ["David Smith"]),  # swapped letters
        ("david smtih", ["David Smith"]),
        ("dvid smith", ["David Smith"]),  # a missing letter in a five-letter name
        ("smith davd", ["David Smith"]),  # in any order
        ("mria lopez", ["Maria Lopez"]),
        ("maria lpoez", ["Maria Lopez"]),
        ("mari lopez", ["Maria Lopez"]),  # a missing last letter
        ("dave jones", ["Dave Jones"]),  # exact words need no correction
    ],
)
def test_one_mistyped_short_name_beside_exact_words_still_finds_the_person(org, users, q, found):
    make_people(org, "David Smith", "Dave Jones", "Ann Davenport", "Maria Lopez", "Mario Rossi")
    assert global_contacts(users["admin"], q) == found
    assert contact_names(users["admin"], q) == found


@pytest.mark.postgres_only
def test_davd_alone_still_offers_the_closest_names(org, users):
    make_people(org, "David Smith", "Dave Jones", "Ann Davenport")
    assert global_contacts(users["admin"], "davd") == ["Dave Jones", "Ann Davenport"]  # the closest: "dave"
    # The closest correction wins when it finds someone: a Dave Smith is likelier than a David Smith.
    make_people(org, "Dave Smith")
    assert global_contacts(users["admin"], "davd smith") == ["Dave Smith"]
    assert contact_names(users["admin"], "davd smith") == ["Dave Smith"]
    make_people(org, "Zed Davd")
    assert global_contacts(users["admin"], "davd") == ["Zed Davd"]  # a name has the word: no correction


def test_the_search_box_says_where_typos_are_corrected(client, login, engine_name):
    from tests.conftest import HX

    login("sales")
    empty = client.get("/search?q=xqzvw", headers=HX).text
    page = client.get("/contacts").text
    if engine_name == "postgresql":
        assert "exact words only" not in empty and "a mistyped word is corrected" in page
    else:
        assert "exact words only (typo tolerance needs PostgreSQL)" in empty
        assert "exact words only (typo tolerance needs PostgreSQL)" in page

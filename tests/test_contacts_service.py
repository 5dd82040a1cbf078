"""Contacts service: list, search, bulk actions, duplicates, export, detail.

The `people` fixture is in tests/conftest.py (shared with test_contacts_views.py)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from crm_web.entities import CONTACT
from crm_web.errors import BadRequest, NotFound, PermissionDenied
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import Contact, contact_tags
from crm_web.services.activities import ActivityService, Links
from crm_web.services.base import Actor
from crm_web.services.contacts import ContactService
from tests import factories


def spec(**args):
    from werkzeug.datastructures import MultiDict

    return parse_filter(MultiDict(list(args.items())), CONTACT.filters)


def svc(user):
    return ContactService(factories.actor_for(user))


# --- service ---------------------------------------------------------------------------------


def test_list_counts_in_one_page_query(people, users):
    page = svc(users["admin"]).list_page(sort="name")
    rows = {r.contact.first_name: r for r in page.items}
    assert page.total == 3
    assert (rows["John"].deal_count, rows["John"].activity_count) == (2, 1)  # the deleted deal is not counted
    assert rows["John"].contact.primary_company.name == "Acme Corp"
    assert [r.contact.last_name for r in page.items] == ["Doe", "Smith", "Stone"]


def test_list_filter_scope_and_sort(people, users):
    service = svc(users["sales"])
    assert [r.contact.first_name for r in service.list_page(scope="mine", sort="name").items] == ["John", "Bob"]
    filtered = service.list_page(filter_spec=spec(f="company.contains.acme"))
    assert [r.contact.first_name for r in filtered.items] == ["John"]
    by_deals = service.list_page(sort="-deals")
    assert by_deals.items[0].contact.first_name == "John"
    with pytest.raises(BadRequest):
        service.list_page(sort="password")


def test_search_contains_each_word(people, users):
    page = svc(users["admin"]).list_page(q="john smi")
    assert next(r.contact.first_name for r in page.items) == "John"
    found = [r.contact.first_name for r in svc(users["admin"]).list_page(q="ACME.COM").items]
    assert sorted(found) == ["Jane", "John"]  # exact matches: a list never adds corrected ones to them


@pytest.mark.postgres_only
def test_search_is_typo_tolerant_on_postgresql(people, users):
    page = svc(users["admin"]).list_page(q="jonh smiht")
    assert page.items and page.items[0].contact.first_name == "John"


@pytest.mark.postgres_only
def test_a_typo_in_one_word_is_corrected_but_short_needles_only_match_contents(org, users):
    for first, last in [
        ("Adrian", "Silva"),
        ("Laura", "Lewis"),
        ("Lee", "Park"),
        ("Kathleen", "Ng"),
        ("Martin", "Ode"),
    ]:
        factories.make_contact(org, first_name=first, last_name=last)
    service = svc(users["admin"])

    def names(q):
        return {row.contact.full_name for row in service.list_page(q=q).items}

    assert names("silav") == {"Adrian Silva"}  # one swap in one word of the name
    assert names("lee") == {"Lee Park", "Kathleen Ng"}  # 3 letters: contains only, not every "le..." word
    assert "Laura Lewis" not in names("mart") and "Martin Ode" in names("mart")


def test_other_org_is_invisible(people, users, other_org):
    stranger = factories.make_contact(other_org, first_name="Eve")
    service = svc(users["admin"])
    assert "Eve" not in [r.contact.first_name for r in service.list_page().items]
    with pytest.raises(NotFound):
        service.detail(stranger.id)
    assert service.delete_many([stranger.id]) == []


def test_bulk_tag_and_owner_only_touch_selected_ids_of_this_org(people, users, org, other_org):
    tag = factories.make_tag(org, name="VIP")
    stranger = factories.make_contact(other_org, first_name="Eve")
    service = svc(users["admin"])
    tagged = service.bulk_add_tag([people["john"].id, people["bob"].id, stranger.id], tag_id=tag.id)
    assert set(tagged) == {people["john"].id, people["bob"].id}
    service.bulk_add_tag([people["john"].id], tag_id=tag.id)  # already tagged: no duplicate row
    links = db.session.execute(select(contact_tags.c.contact_id).where(contact_tags.c.tag_id == tag.id)).all()
    assert sorted(r[0] for r in links) == sorted([people["john"].id, people["bob"].id])
    changed = service.bulk_change_owner([people["jane"].id, stranger.id], owner_id=users["sales"].id)
    assert list(changed) == [people["jane"].id]
    db.session.expire_all()
    assert db.session.get(Contact, stranger.id).owner_id is None
    with pytest.raises(NotFound):
        service.bulk_change_owner([people["jane"].id], owner_id=factories.make_user(other_org).id)


def test_sales_cannot_bulk_change_others_contacts(people, users, org):
    tag = factories.make_tag(org)
    with pytest.raises(PermissionDenied):
        svc(users["sales"]).bulk_add_tag([people["jane"].id], tag_id=tag.id)


def test_bulk_delete_and_restore_exactly(people, users):
    service = svc(users["admin"])
    deleted = service.delete_many([people["john"].id, people["bob"].id])
    assert service.list_page().total == 1
    assert sorted(service.restore_many(deleted)) == sorted(deleted)
    assert service.list_page().total == 3


def test_duplicate_email(people, users):
    service = svc(users["admin"])
    assert service.duplicate_of("JOHN@acme.com").id == people["john"].id
    assert service.duplicate_of("john@acme.com", exclude_id=people["john"].id) is None
    assert service.duplicate_of("") is None


@pytest.mark.postgres_only
def test_duplicate_email_check_can_use_the_email_key_index(people, users):
    """The live duplicate warning compares lower(email) per org: migration 0005's index serves it (the
    contact page's twin lookup uses the same expression; at scale see docs/benchmarks.md)."""
    from sqlalchemy import event

    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    # Enough contacts in the org (and fresh statistics) that the plan reflects the index, not a tiny table.
    db.session.execute(
        Contact.__table__.insert(),
        [
            {
                "id": uuid.uuid4(),
                "org_id": people["john"].org_id,
                "first_name": f"P{i}",
                "last_name": "",
                "email": f"person{i}@example.com",
                "status": "prospect",
                "do_not_contact": False,
                "version": 1,
            }
            for i in range(2000)
        ],
    )
    db.session.execute(text("ANALYZE contacts"))
    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        svc(users["admin"]).duplicate_of("John@Acme.com")
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    ((statement, parameters),) = [(s, p) for s, p in captured if "FROM contacts" in s]
    plan = "\n".join(db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
    assert "Index Scan using ix_contacts_org_email_key" in plan, plan


def test_detail_loads_everything(people, users, org):
    factories.make_activity(org, contact_id=people["john"].id, subject="Later")
    detail = svc(users["admin"]).detail(people["john"].id)
    assert len(detail.deals) == 2
    # The page's activity timeline, as the timeline's own URL reads it.
    timeline = ActivityService(Actor.of(users["admin"])).timeline(links=Links(contact=people["john"].id))
    assert detail.timeline == timeline and len(timeline) == 2
    assert timeline[0].subject == "Later"  # newest first


def test_export_rows_follow_filter_and_search(people, users):
    rows = list(svc(users["admin"]).export_rows(q="acme"))
    assert sorted(r.contact.first_name for r in rows) == ["Jane", "John"]


def test_searched_pages_count_and_clamp_like_plain_ones(org, users, count_queries, engine_name):
    """A search returns its total with the page ids (one statement); a page past the end shows the last one.
    On PostgreSQL a needle long enough for typo tolerance costs one EXISTS more: it picks the tier; a
    typo one more, the vocabulary lookup."""
    for i in range(7):
        factories.make_contact(org, first_name=f"Ada{i}", last_name="Lovelace", email=f"ada{i}@example.com")
    factories.make_contact(org, first_name="Grace", last_name="Hopper")
    service = svc(users["admin"])
    with count_queries() as q:
        page = service.list_page(q="lovelace", per_page=3, page=2)
    assert (page.total, page.page, len(page.items)) == (7, 2, 3)
    with count_queries() as plain:
        service.list_page(per_page=3, page=2)
    tier_check = 1 if engine_name == "postgresql" else 0
    assert q.count == plain.count + tier_check, q  # the count rides along with the ranked ids, then the rows
    with count_queries() as typo:
        page = service.list_page(q="lovelcae", per_page=3, page=2)
    if engine_name == "postgresql":  # no row has the typo: after the EXISTS, one vocabulary lookup corrects it
        assert (page.total, typo.count) == (7, q.count + 1), typo
    else:
        assert page.total == 0
    last = service.list_page(q="lovelace", per_page=3, page=99)
    assert (last.total, last.page, len(last.items)) == (7, 3, 1)
    none = service.list_page(q="nobody-by-that-name", per_page=3, page=5)
    assert (none.total, none.page, none.items) == (0, 1, [])

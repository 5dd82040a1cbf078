"""Contacts: service (list, search, bulk actions, export, detail) and views (list, builder, CSV, forms, undo)."""

from __future__ import annotations

import csv
import io
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
from tests.conftest import HX, LOGIN_STATEMENTS

XSS = '<script>alert("x")</script>'


def spec(**args):
    from werkzeug.datastructures import MultiDict

    return parse_filter(MultiDict(list(args.items())), CONTACT.filters)


@pytest.fixture
def people(org, users):
    co = factories.make_company(org, name="Acme Corp")
    sales = users["sales"]
    john = factories.make_contact(
        org,
        first_name="John",
        last_name="Smith",
        email="john@acme.com",
        primary_company_id=co.id,
        owner_id=sales.id,
        status="customer",
    )
    jane = factories.make_contact(
        org, first_name="Jane", last_name="Doe", email="jane@acme.com", owner_id=users["manager"].id
    )
    bob = factories.make_contact(org, first_name="Bob", last_name="Stone", email="bob@else.com", owner_id=sales.id)
    pipeline = factories.make_pipeline(org)
    factories.make_deal(org, pipeline=pipeline, contact_id=john.id)
    factories.make_deal(org, pipeline=pipeline, contact_id=john.id)
    gone = factories.make_deal(org, pipeline=pipeline, contact_id=john.id)
    gone.deleted_at = gone.created_at
    db.session.commit()
    factories.make_activity(org, contact_id=john.id)
    return {"john": john, "jane": jane, "bob": bob, "company": co}


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
    assert changed == [people["jane"].id]
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
    # The activities are the timeline panel's (loaded from its own URL after the page).
    timeline = ActivityService(Actor.of(users["admin"])).timeline(links=Links(contact=people["john"].id))
    assert len(timeline) == 2
    assert timeline[0].subject == "Later"  # newest first


def test_export_rows_follow_filter_and_search(people, users):
    rows = list(svc(users["admin"]).export_rows(q="acme"))
    assert sorted(r.contact.first_name for r in rows) == ["Jane", "John"]


# --- views -----------------------------------------------------------------------------------


def test_list_page_and_fragment(client, login, people):
    login("sales")
    page = client.get("/contacts")
    assert page.status_code == 200 and "<html" in page.text and "John" in page.text
    assert "HX-Request" in page.headers["Vary"]
    fragment = client.get("/contacts?q=john&sort=-name", headers=HX)
    assert fragment.status_code == 200
    assert 'id="contact-table"' in fragment.text and "<html" not in fragment.text
    assert fragment.headers["HX-Push-Url"] == "/contacts?q=john&sort=-name"


def test_builder_form_pushes_canonical_url(client, login, people):
    login("sales")
    response = client.get(
        "/contacts?match=any&field=name&op=contains&value=john&group=0&field=email&op=endsWith&value=else.com&group=0",
        headers=HX,
    )
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "/contacts?match=any&f=name.contains.john&f=email.endsWith.else.com"
    assert "John" in response.text and "Bob" in response.text and "Jane" not in response.text


def test_bad_filter_is_shown_inline_not_as_error_page(client, login, people):
    login("sales")
    response = client.get("/contacts?field=name&op=contains&value=jo&field=status&op=equals&value=bogus", headers=HX)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#filter-builder"
    assert response.headers["HX-Push-Url"] == "false"
    assert 'class="filter-row has-error"' in response.text and "not one of the choices" in response.text
    full = client.get("/contacts?f=nope.equals.1")
    assert full.status_code == 422 and "<html" in full.text and "not a field you can filter on" in full.text


@pytest.mark.parametrize("query", ["page=abc", "per_page=1000", "per_page=x", "scope=everyone", "sort=secret"])
def test_bad_list_params_are_400(client, login, people, query):
    login("sales")
    assert client.get(f"/contacts?{query}").status_code == 400


def test_other_org_ids_are_404(client, login, other_org):
    login("admin")
    stranger = factories.make_contact(other_org)
    assert client.get(f"/contacts/{stranger.id}").status_code == 404
    assert client.get(f"/contacts/{stranger.id}/edit").status_code == 404
    assert client.post(f"/contacts/{stranger.id}/delete", headers=HX).status_code == 404
    assert client.get("/contacts/not-a-uuid").status_code == 404


def test_csrf_enforced(client, login, people):
    login("admin")
    assert client.post("/contacts/bulk/delete", data={"ids": [str(people["bob"].id)]}, csrf=False).status_code == 400
    assert client.post(f"/contacts/{people['bob'].id}/delete", csrf=False).status_code == 400


def test_csv_export_quotes_and_filters(client, login, org, people):
    factories.make_contact(org, first_name='Quote "Q"', last_name="Comma, Inc", email="q@acme.com")
    factories.make_contact(org, first_name="=HYPERLINK(1)", last_name="Evil", email="evil@else.com")
    login("admin")
    response = client.get("/contacts/export.csv?q=acme")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'attachment; filename="contacts-' in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][0] == "First name"
    names = sorted((r[0], r[1]) for r in rows[1:])
    assert names == [("Jane", "Doe"), ("John", "Smith"), ('Quote "Q"', "Comma, Inc")]
    assert '"Quote ""Q"""' in text and '"Comma, Inc"' in text
    everything = client.get("/contacts/export.csv").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in everything  # a formula is never handed to a spreadsheet


def test_bulk_delete_view_and_one_undo(client, login, people):
    login("admin")
    ids = [str(people["john"].id), str(people["bob"].id)]
    response = client.post("/contacts/bulk/delete?sort=name", data={"ids": ids}, headers=HX)
    assert response.status_code == 200
    assert 'id="contact-table"' in response.text and "Deleted 2 contacts." in response.text
    assert "/contacts/bulk/restore?sort=name" in response.text and "btn-undo" in response.text
    assert "John" not in response.text.split("toast")[0]
    undo = client.post("/contacts/bulk/restore?sort=name", data={"ids": ids}, headers=HX)
    assert undo.status_code == 200 and "John" in undo.text and "Restored 2 contacts." in undo.text


def test_bulk_tag_and_owner_views(client, login, org, users, people):
    tag = factories.make_tag(org, name="Hot")
    login("admin")
    response = client.post(
        "/contacts/bulk/tag", data={"ids": [str(people["jane"].id)], "tag_id": str(tag.id)}, headers=HX
    )
    assert response.status_code == 200 and "Tagged 1 contact." in response.text
    response = client.post(
        "/contacts/bulk/owner", data={"ids": [str(people["jane"].id)], "owner_id": str(users["sales"].id)}, headers=HX
    )
    assert response.status_code == 200 and "Reassigned 1 contact." in response.text
    assert (
        client.post(
            "/contacts/bulk/owner", data={"ids": [str(people["jane"].id)], "owner_id": "junk"}, headers=HX
        ).status_code
        == 400
    )


def test_detail_delete_and_undo(client, login, people):
    login("admin")
    john = people["john"]
    page = client.get(f"/contacts/{john.id}")
    assert page.status_code == 200 and "Acme Corp" in page.text
    deleted = client.post(f"/contacts/{john.id}/delete", headers=HX)
    assert deleted.status_code == 200 and "moved to the trash" in deleted.text
    assert f"/contacts/{john.id}/restore" in deleted.text
    assert client.get(f"/contacts/{john.id}").status_code == 404
    restored = client.post(f"/contacts/{john.id}/restore", headers=HX)
    assert restored.status_code == 204 and f"/contacts/{john.id}" in restored.headers["HX-Location"]
    assert client.get(f"/contacts/{john.id}").status_code == 200


def test_create_validation_and_duplicate_warning(client, login, people):
    login("sales")
    bad = client.post("/contacts", data={"first_name": "", "email": "not-an-email", "status": "prospect"}, headers=HX)
    assert bad.status_code == 422 and 'id="contact-form"' in bad.text and "<html" not in bad.text
    assert "This field is required." in bad.text
    warning = client.get("/contacts/check-email?email=JOHN@acme.com", headers=HX)
    assert "Another contact already uses this email" in warning.text
    assert f"/contacts/{people['john'].id}" in warning.text
    assert "Another contact" not in client.get("/contacts/check-email?email=nobody@x.com", headers=HX).text
    created = client.post(
        "/contacts", data={"first_name": "Johnny", "email": "john@acme.com", "status": "lead"}, headers=HX
    )
    assert created.status_code == 204 and "/contacts/" in created.headers["HX-Location"]
    new_id = created.headers["HX-Location"].split("/contacts/")[1].split('"')[0]
    detail = client.get(f"/contacts/{new_id}")
    assert "Another contact uses this email" in detail.text  # non-blocking, still visible afterwards


def test_edit_form_and_inline_field(client, login, people):
    login("admin")
    john = people["john"]
    assert client.get(f"/contacts/{john.id}/edit").status_code == 200
    form = client.get(f"/contacts/{john.id}/fields/title/edit", headers=HX)
    assert form.status_code == 200 and 'name="title"' in form.text
    saved = client.post(f"/contacts/{john.id}/fields/title", data={"title": "CTO"}, headers=HX)
    assert saved.status_code == 200 and "CTO" in saved.text
    detail = client.get(f"/contacts/{john.id}").text
    assert "History" in detail and "updated" in detail and "CTO" in detail  # the record history is shown
    invalid = client.post(f"/contacts/{john.id}/fields/email", data={"email": "nope"}, headers=HX)
    assert invalid.status_code == 422 and "field-error" in invalid.text
    assert client.get(f"/contacts/{john.id}/fields/password/edit", headers=HX).status_code == 404


def test_xss_in_names_is_escaped(client, login, org):
    factories.make_contact(org, first_name=XSS, last_name="Hacker", email="xss@evil.com")
    contact = factories.make_contact(org, first_name="Plain", last_name=XSS)
    login("admin")
    for url in ("/contacts", f"/contacts/{contact.id}"):
        text = client.get(url).text
        assert XSS not in text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    found = client.get("/search?q=script", headers=HX).text
    assert "<script>" not in found and "&lt;<mark>script</mark>&gt;alert(&#34;x&#34;)" in found


def test_global_search_groups_and_highlights(client, login, org, people, count_queries):
    factories.make_company(org, name="Smithson Ltd")
    factories.make_lead(org, first_name="Smitty", last_name="Werben")
    login("admin")
    with count_queries() as queries:
        response = client.get("/search?q=smith", headers=HX)
    assert response.status_code == 200 and "<html" not in response.text
    assert "Contacts" in response.text and "Companies" in response.text
    assert "<mark>Smith</mark>" in response.text
    # One statement per type, plus on PostgreSQL the plan setting and the vocabulary lookup (services/search.py).
    assert queries.count == 4 + LOGIN_STATEMENTS + 2 * (db.engine.dialect.name == "postgresql"), queries
    assert client.get("/search?q=s", headers=HX).text.strip().endswith("</div>")


def _budget(client, url, count_queries):
    with count_queries() as queries:
        response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    return queries.count


def test_list_query_budget_is_constant(client, login, org, users, count_queries):
    tag = factories.make_tag(org)
    company = factories.make_company(org)
    login("sales")
    first = factories.make_contact(org, first_name="Alpha", primary_company_id=company.id, owner_id=users["sales"].id)
    db.session.execute(contact_tags.insert().values(contact_id=first.id, tag_id=tag.id))
    db.session.commit()
    urls = [
        "/contacts?per_page=10",
        "/contacts?per_page=100",
        "/contacts?per_page=10&f=name.contains.a&q=a",
        f"/contacts?per_page=100&f=tags.in.{tag.id}&scope=mine&q=alp&sort=-deals",
    ]
    one = [_budget(client, u, count_queries) for u in urls]
    for i in range(120):
        factories.make_contact(org, first_name=f"Alp{i}", primary_company_id=company.id, owner_id=users["sales"].id)
    many = [_budget(client, u, count_queries) for u in urls]
    assert one == many
    assert set(many) == {4 + LOGIN_STATEMENTS}


def test_detail_query_budget(client, login, people, count_queries):
    login("admin")
    assert _budget(client, f"/contacts/{people['john'].id}", count_queries) <= 6 + LOGIN_STATEMENTS


def test_empty_states(client, login, people):
    login("manager")
    assert "No contacts match" in client.get("/contacts?q=zzzzzz").text


def test_unknown_id_restore_is_404(client, login):
    login("admin")
    assert client.post(f"/contacts/{uuid.uuid4()}/restore", headers=HX).status_code == 404


def test_builder_groups_round_trip_and_errors_land_on_their_row(client, login, people):
    login("admin")
    grouped = client.get(
        "/contacts?field=email&op=contains&value=acme&group=1&field=name&op=contains&value=bob"
        "&group=1&g1=any&field=status&op=in&value=customer,prospect&group=0",
        headers=HX,
    )
    assert grouped.status_code == 200
    assert grouped.headers["HX-Push-Url"] == (
        "/contacts?f=status.in.customer,prospect&f=1:email.contains.acme&f=1:name.contains.bob&g1=any"
    )
    page = client.get(grouped.headers["HX-Push-Url"])
    assert page.status_code == 200 and 'name="g1"' in page.text
    # Form order: group-1 row, top row, group-1 row. Canonical order puts the top row first,
    # so error f[2] belongs to the second row of group 1 and is shown there, not elsewhere.
    bad = client.get(
        "/contacts?field=name&op=contains&value=x&group=1&field=status&op=equals&value=customer"
        "&group=0&field=name&op=bogus&value=y&group=1",
        headers=HX,
    )
    assert bad.status_code == 422


def test_builder_pins_each_rows_error_on_that_row():
    from werkzeug.datastructures import MultiDict

    from crm_web.errors import ValidationError
    from crm_web.filters import parse_rows
    from crm_web.views.filtering import builder_from_rows

    args = MultiDict(
        [
            ("field", "name"),
            ("op", "contains"),
            ("value", "x"),
            ("group", "1"),
            ("field", "status"),
            ("op", "equals"),
            ("value", "customer"),
            ("group", "0"),
            ("field", "name"),
            ("op", "bogus"),
            ("value", "y"),
            ("group", "1"),
            ("g1", "any"),
        ]
    )
    with pytest.raises(ValidationError) as caught:
        parse_filter(args, CONTACT.filters)
    assert "not an operator" in caught.value.message
    builder = builder_from_rows(parse_rows(args, CONTACT.filters))
    assert [r.field for r in builder.rows] == ["status"] and builder.rows[0].error == ""
    group = builder.groups[0]
    assert group.match == "any" and [r.op for r in group.rows] == ["contains", "bogus"]
    assert group.rows[0].error == "" and "not an operator" in group.rows[1].error


def test_form_attributes_render_as_html_attributes(client, login, people):
    """htmx reads hx-* (dashes); WTForms keeps underscores except for data_/aria_, and None is no value."""
    login("sales")
    html = client.get("/contacts/new").get_data(as_text=True)
    assert 'hx-get="/contacts/check-email' in html and "hx_get" not in html
    assert '="None"' not in html
    html = client.post("/contacts", data={"first_name": "", "email": "x@example.com"}).get_data(as_text=True)
    assert 'aria-describedby="err-first_name"' in html and '="None"' not in html


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

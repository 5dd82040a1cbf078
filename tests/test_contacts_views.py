"""Contacts views: list, builder, CSV, forms, inline edits, undo, query budgets.

The `people` fixture is in tests/conftest.py (shared with test_contacts_service.py)."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from crm_web.entities import CONTACT
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import contact_tags
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS

XSS = '<script>alert("x")</script>'


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


def test_a_bulk_delete_that_deletes_nothing_offers_no_undo(client, login, people):
    login("admin")
    ids = [str(people["john"].id)]
    client.post("/contacts/bulk/delete", data={"ids": ids}, headers=HX)  # another user's delete, first
    again = client.post("/contacts/bulk/delete", data={"ids": ids}, headers=HX)
    assert again.status_code == 200 and "Nothing was deleted" in again.text
    assert "btn-undo" not in again.text and "Deleted 0" not in again.text


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
    client.get("/contacts")  # the first reads the saved-view tabs and caches them
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

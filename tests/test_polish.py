"""What the pages say and offer (issue 18, Polish): the trash's real purge rule and its bulk buttons,
one message per refused request, inline values that read as values, the filter behind its button,
lists that use the width, the activities' views that do not contradict each other."""

from __future__ import annotations

import re

from tests import factories
from tests.conftest import HX


def test_trash_states_the_real_purge_rule_and_disables_bulk_buttons(client, login, org, users):
    login("admin")
    contact = factories.make_contact(org, first_name="Gone")
    client.post(f"/contacts/{contact.id}/delete")
    html = client.get("/trash").text
    assert "crm purge-trash" in html and "nothing is purged without it" in html
    assert "then they are deleted for good." not in html  # the old promise
    for label in ("Restore selected", "Delete permanently…"):
        button = re.search(r"<button[^>]*>" + re.escape(label), html)
        assert button and "disabled" in button.group(0) and "data-needs-selection" in button.group(0)


def test_a_refused_empty_selection_says_it_once(client, login):
    login("admin")
    response = client.post("/trash/restore", data={}, headers=HX)
    assert response.status_code == 422
    assert response.text.count("Select at least one record.") == 1


def test_contact_values_read_as_values_and_emails_wrap_at_their_parts(client, login, org):
    login("admin")
    contact = factories.make_contact(org, first_name="Wrap", email="a.very.long.address@example-company.org")
    html = client.get(f"/contacts/{contact.id}").text
    assert "a<wbr>.very<wbr>.long<wbr>.address<wbr>@example-company<wbr>.org" in html
    editor = client.get(f"/contacts/{contact.id}/fields/city/edit", headers=HX).text
    assert "data-inline-cancel" in editor  # Esc clicks it (static/js/app.js)


def test_lists_use_the_width_and_hide_the_filter_behind_its_button(client, login, org):
    login("admin")
    for url in ("/contacts", "/companies", "/deals", "/leads", "/activities", "/trash"):
        html = client.get(url).text
        assert 'class="page-wide"' in html, url
    html = client.get("/contacts").text
    assert '<details class="filter-disclosure" id="filter-disclosure">' in html
    assert "data-density-toggle" in html and "data-filter-count" not in html
    html = client.get("/contacts?f=status.in.customer&f=email.contains.e").text
    assert re.search(r"data-filter-count[^>]*>2</span>", html)


def test_my_open_activities_offer_no_contradicting_scope_switch(client, login):
    login("sales")
    mine = client.get("/activities").text
    assert "My open" in mine and "Everyone&#39;s" not in mine and "Everyone's" not in mine
    overdue = client.get("/activities?view=overdue").text
    assert "Everyone&#39;s" in overdue or "Everyone's" in overdue


def test_activity_form_cancel_closes_an_inline_form(client, login, org):
    login("sales")
    contact = factories.make_contact(org, first_name="Ina")
    html = client.get(f"/activities/new?contact={contact.id}", headers=HX).text
    assert "data-form-cancel" in html


def test_board_names_the_column_in_view_on_a_phone(client, login, org):
    login("admin")
    pipeline = factories.make_pipeline(org)
    first = factories.stages_of(pipeline)[0]
    html = client.get(f"/deals/board?pipeline={pipeline.id}").text
    assert "data-board-indicator" in html and f"{first.name} · 1 of" in html


def test_record_url_is_url_for_built_once_per_endpoint(app):
    """Rows, cards and timeline items build their links with templating.record_url: the same URL as
    url_for, the route built once per request and endpoint; anything but a UUID goes through url_for."""
    import uuid

    from flask import g, url_for

    from crm_web.templating import record_url

    ids = [uuid.uuid4() for _ in range(3)]
    with app.test_request_context("/"):
        for endpoint, name in (("contacts.detail", "contact_id"), ("deals.edit", "deal_id"), ("board.move", "deal_id")):
            for record_id in ids:
                assert record_url(endpoint, **{name: record_id}) == url_for(endpoint, **{name: record_id})
        assert len(g.record_urls) == 3
        assert record_url("contacts.detail", contact_id=str(ids[0])) == url_for("contacts.detail", contact_id=ids[0])

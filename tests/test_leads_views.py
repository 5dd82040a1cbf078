"""Lead pages: list (filter, search, sort, bulk delete + undo, CSV), detail, status clicks, forms,
conversion (once, with and without a default pipeline), delete + undo; budgets, bad input, CSRF, permissions."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm_web.extensions import db
from crm_web.models import Company, Contact, Deal, Lead, lead_tags
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS

# The checkbox unticked: a browser still posts the form's other fields.
NO_DEAL = {"deal_name": ""}
XSS = '<img src=x onerror="alert(1)">'


def lead_value(lead, column):
    """The stored value, trashed or not (a missing row fails: a soft delete must never be a hard one)."""
    return db.session.execute(
        select(column).where(Lead.id == lead.id).execution_options(include_deleted=True)
    ).scalar_one()


def make_leads(org, n, **values):
    tag = factories.make_tag(org, name=f"T{uuid.uuid4().hex[:6]}")
    leads = []
    for _ in range(n):
        lead = factories.make_lead(org, **values)
        db.session.execute(lead_tags.insert().values(lead_id=lead.id, tag_id=tag.id))
        leads.append(lead)
    db.session.commit()
    return leads


# --- list ----------------------------------------------------------------------------------------


def test_list_page_and_fragment(client, login, org, users):
    login("sales")
    make_leads(org, 2, owner_id=users["sales"].id, company_name="Globex")
    page = client.get("/leads")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="lead-table"' in html and "Globex" in html
    assert "HX-Request" in page.headers["Vary"]
    fragment = client.get("/leads?q=globex", headers=HX)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<div id="lead-table"')
    assert fragment.headers["HX-Push-Url"] == "/leads?q=globex"


@pytest.mark.parametrize("per_page", [10, 100])
def test_list_budget_is_constant(client, login, org, users, count_queries, per_page):
    login("sales")
    make_leads(org, 1, owner_id=users["sales"].id)
    client.get("/leads")  # the first reads the saved-view tabs and caches them
    with count_queries() as one:
        assert client.get(f"/leads?per_page={per_page}&f=status.in.new,contacted").status_code == 200
    make_leads(org, 40, owner_id=users["manager"].id)
    with count_queries() as many:
        assert client.get(f"/leads?per_page={per_page}&f=status.in.new,contacted").status_code == 200
    assert one.count == many.count <= 4 + LOGIN_STATEMENTS


def test_list_filter_sort_scope(client, login, org, users):
    login("sales")
    factories.make_lead(org, first_name="Hotty", status="qualified", score=90, owner_id=users["sales"].id)
    factories.make_lead(org, first_name="Chilly", status="new", score=5, owner_id=users["manager"].id)
    html = client.get("/leads?f=status.equals.qualified", headers=HX).get_data(as_text=True)
    assert "Hotty" in html and "Chilly" not in html
    html = client.get("/leads?sort=-score", headers=HX).get_data(as_text=True)
    assert html.index("Hotty") < html.index("Chilly")
    html = client.get("/leads?sort=score", headers=HX).get_data(as_text=True)
    assert html.index("Chilly") < html.index("Hotty")
    html = client.get("/leads?scope=mine", headers=HX).get_data(as_text=True)
    assert "Hotty" in html and "Chilly" not in html


def test_invalid_filter_is_shown_inline(client, login):
    login("sales")
    response = client.get("/leads?f=score.greaterThan.lots", headers=HX)
    assert response.status_code == 422 and response.headers["HX-Retarget"] == "#filter-builder"
    assert 'class="filter-error"' in response.get_data(as_text=True)


@pytest.mark.parametrize("query", ["page=x", "per_page=0", "sort=secret", "scope=x", "q=" + "a" * 300])
def test_list_bad_params_are_400(client, login, query):
    login("sales")
    assert client.get(f"/leads?{query}").status_code == 400


def test_export_csv(client, login, org):
    login("sales")
    factories.make_lead(org, first_name="Ann", last_name="O'Neil, Jr", company_name="Ça va", status="new")
    factories.make_lead(org, first_name="Bob", status="qualified")
    response = client.get("/leads/export.csv?f=status.equals.new")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "First name" and len(rows) == 2
    assert rows[1][:2] == ["Ann", "O'Neil, Jr"] and rows[1][5] == "Ça va"


def test_bulk_delete_and_undo(client, login, org, users):
    login("sales")
    leads = make_leads(org, 3, owner_id=users["sales"].id)
    ids = [str(lead.id) for lead in leads]
    response = client.post("/leads/bulk/delete?sort=name", data={"ids": ids}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Deleted 3 leads." in html and "/leads/bulk/restore?sort=name" in html
    assert (
        db.session.scalar(select(func.count()).select_from(Lead).where(Lead.id.in_([lead.id for lead in leads]))) == 0
    )
    undo = client.post("/leads/bulk/restore", data={"ids": ids}, headers=HX)
    assert undo.status_code == 200 and "Restored 3 leads." in undo.get_data(as_text=True)
    assert (
        db.session.scalar(select(func.count()).select_from(Lead).where(Lead.id.in_([lead.id for lead in leads]))) == 3
    )


def test_bulk_delete_csrf_and_permissions(client, login, org, users):
    login("sales")
    theirs = factories.make_lead(org, owner_id=users["manager"].id)
    assert client.post("/leads/bulk/delete", data={"ids": [str(theirs.id)]}, csrf=False).status_code == 400
    assert client.post("/leads/bulk/delete", data={"ids": [str(theirs.id)]}, headers=HX).status_code == 403
    assert lead_value(theirs, Lead.deleted_at) is None


# --- detail, status ---------------------------------------------------------------------------------


def test_detail_page_escapes_and_links(client, login, org):
    login("sales")
    lead = factories.make_lead(org, first_name=XSS, notes=XSS, company_name=XSS)
    factories.make_activity(org, lead_id=lead.id, subject="Intro call")
    html = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert XSS not in html and "&lt;img src=x" in html
    assert f"/leads/{lead.id}/convert" in html and 'id="lead-status"' in html
    # The timeline arrives with the page (no request of its own), and refreshes itself from its URL.
    assert "Intro call" in html and 'hx-trigger="load"' not in html
    assert f'hx-get="/activities/timeline?lead={lead.id}"' in html
    timeline = client.get(f"/activities/timeline?lead={lead.id}", headers=HX).get_data(as_text=True)
    assert "Intro call" in timeline and XSS not in timeline


def test_detail_budget(client, login, org, count_queries):
    login("sales")
    lead = factories.make_lead(org)
    with count_queries() as q:
        assert client.get(f"/leads/{lead.id}").status_code == 200
    assert q.count <= 4 + LOGIN_STATEMENTS  # lead, its activity timeline, history (2)


def test_bad_other_org_and_deleted_ids_are_404(client, login, org, other_org):
    login("admin")
    foreign = factories.make_lead(other_org)
    gone = factories.make_lead(org, deleted_at=factories.datetime.now(factories.UTC))
    for url in (
        "/leads/123",
        f"/leads/{foreign.id}",
        f"/leads/{gone.id}",
        f"/leads/{foreign.id}/edit",
        f"/leads/{foreign.id}/convert",
        f"/leads/{uuid.uuid4()}",
    ):
        assert client.get(url).status_code == 404, url
    for url in (f"/leads/{foreign.id}/status", f"/leads/{foreign.id}/convert", f"/leads/{foreign.id}/delete"):
        assert client.post(url, data={"status": "contacted"}, headers=HX).status_code == 404, url


def test_status_click_rerenders_the_status_block(client, login, org, users):
    login("sales")
    lead = factories.make_lead(org, owner_id=users["sales"].id)
    response = client.post(f"/leads/{lead.id}/status", data={"status": "qualified"}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<div id="lead-status"') and "<html" not in html
    assert "is now qualified" in html
    assert lead_value(lead, Lead.status) == "qualified"
    plain = client.post(f"/leads/{lead.id}/status", data={"status": "contacted"})
    assert plain.status_code == 303


@pytest.mark.parametrize("status", ["converted", "bogus", ""])
def test_status_cannot_be_set_to_converted_or_junk(client, login, org, status):
    login("admin")
    lead = factories.make_lead(org)
    assert client.post(f"/leads/{lead.id}/status", data={"status": status}, headers=HX).status_code == 400
    assert lead_value(lead, Lead.status) == "new"


def test_status_needs_csrf_and_ownership(client, login, org, users):
    login("sales")
    theirs = factories.make_lead(org, owner_id=users["manager"].id)
    assert client.post(f"/leads/{theirs.id}/status", data={"status": "contacted"}, csrf=False).status_code == 400
    assert client.post(f"/leads/{theirs.id}/status", data={"status": "contacted"}, headers=HX).status_code == 403


# --- conversion ---------------------------------------------------------------------------------------


def test_convert_form_shows_the_target_pipeline_and_default_value(client, login, org):
    login("sales")
    factories.make_pipeline(org, name="Main sales", is_default=True)
    lead = factories.make_lead(org, company_name="Initech", estimated_value=Decimal("1234.50"))
    html = client.get(f"/leads/{lead.id}/convert").get_data(as_text=True)
    assert "Main sales" in html and "Lead in" in html and 'value="1234.50"' in html


def test_convert_creates_everything_and_the_lead_links_to_it(client, login, org):
    login("sales")
    factories.make_pipeline(org, is_default=True)
    lead = factories.make_lead(
        org, first_name="Ann", last_name="Lee", company_name="Initech", estimated_value=Decimal("500")
    )
    response = client.post(f"/leads/{lead.id}/convert", data={"create_deal": "y", "deal_value": "750"}, headers=HX)
    assert response.status_code == 204 and response.headers["HX-Location"].find(f"/leads/{lead.id}") > 0
    converted = db.session.scalars(
        select(Lead).where(Lead.id == lead.id).execution_options(populate_existing=True)
    ).one()
    assert converted.status == "converted" and converted.converted_deal_id is not None
    assert db.session.scalar(select(Deal.value).where(Deal.id == converted.converted_deal_id)) == Decimal("750")
    html = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert "was converted" in html  # the flash
    assert f"/contacts/{converted.converted_contact_id}" in html
    assert f"/companies/{converted.converted_company_id}" in html
    assert "Convert</a>" not in html


def test_convert_twice_is_refused_with_409(client, login, org):
    login("admin")
    lead = factories.make_lead(org)
    assert client.post(f"/leads/{lead.id}/convert", data=NO_DEAL).status_code == 303
    contacts = db.session.scalar(select(func.count()).select_from(Contact))
    again = client.post(f"/leads/{lead.id}/convert", data=NO_DEAL)
    assert again.status_code == 409 and "already converted" in again.get_data(as_text=True)
    toast = client.post(f"/leads/{lead.id}/convert", data=NO_DEAL, headers=HX)
    assert toast.status_code == 409 and toast.headers["HX-Retarget"] == "#toasts"
    assert db.session.scalar(select(func.count()).select_from(Contact)) == contacts
    assert "already converted" in client.get(f"/leads/{lead.id}/convert").get_data(as_text=True)


def test_convert_with_a_deal_but_no_default_pipeline_is_a_form_error(client, login, org):
    login("admin")
    lead = factories.make_lead(org, company_name="Nobody Inc")
    html = client.get(f"/leads/{lead.id}/convert").get_data(as_text=True)
    assert "no default pipeline" in html
    response = client.post(f"/leads/{lead.id}/convert", data={"create_deal": "y"}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and body.lstrip().startswith('<form id="convert-form"')
    assert "There is no default pipeline" in body
    assert lead_value(lead, Lead.status) == "new"
    assert db.session.scalar(select(Company.id).where(Company.name == "Nobody Inc")) is None
    ok = client.post(f"/leads/{lead.id}/convert", data=NO_DEAL, headers=HX)  # unticked: no deal
    assert ok.status_code == 204 and lead_value(lead, Lead.converted_deal_id) is None


def test_convert_bad_value_is_inline(client, login, org):
    login("admin")
    lead = factories.make_lead(org)
    response = client.post(f"/leads/{lead.id}/convert", data={"deal_value": "-1"}, headers=HX)
    assert response.status_code == 422 and 'class="field-error"' in response.get_data(as_text=True)


def test_convert_needs_csrf_and_ownership(client, login, org, users):
    login("sales")
    theirs = factories.make_lead(org, owner_id=users["manager"].id)
    assert client.post(f"/leads/{theirs.id}/convert", data=NO_DEAL, csrf=False).status_code == 400
    assert client.post(f"/leads/{theirs.id}/convert", data=NO_DEAL).status_code == 403
    assert client.get(f"/leads/{theirs.id}/convert").status_code == 403
    assert lead_value(theirs, Lead.status) == "new"


# --- create, edit, delete ---------------------------------------------------------------------------------


def test_create_edit_and_inline_errors(client, login, org, users):
    login("sales")
    assert 'id="lead-form"' in client.get("/leads/new").get_data(as_text=True)
    bad = client.post("/leads", data={"first_name": "", "score": "150", "email": "x"}, headers=HX)
    assert bad.status_code == 422 and bad.get_data(as_text=True).lstrip().startswith('<form id="lead-form"')
    ok = client.post("/leads", data={"first_name": "Ann", "score": "40", "owner_id": str(users["sales"].id)})
    assert ok.status_code == 303
    lead = db.session.scalars(select(Lead).where(Lead.first_name == "Ann")).one()
    assert lead.score == 40 and lead.status == "new"
    assert 'value="Ann"' in client.get(f"/leads/{lead.id}/edit").get_data(as_text=True)
    updated = client.post(
        f"/leads/{lead.id}", data={"first_name": "Anne", "owner_id": str(users["sales"].id)}, headers=HX
    )
    assert updated.status_code == 204 and lead_value(lead, Lead.first_name) == "Anne"


def test_sales_cannot_edit_someone_elses_lead(client, login, org, users):
    login("sales")
    theirs = factories.make_lead(org, owner_id=users["manager"].id, first_name="Theirs")
    assert client.get(f"/leads/{theirs.id}/edit").status_code == 403
    assert client.post(f"/leads/{theirs.id}", data={"first_name": "Hijack"}).status_code == 403
    assert lead_value(theirs, Lead.first_name) == "Theirs"


def test_create_needs_csrf(client, login):
    login("sales")
    assert client.post("/leads", data={"first_name": "NoToken"}, csrf=False).status_code == 400


def test_delete_from_detail_then_undo(client, login, org, users):
    login("sales")
    lead = factories.make_lead(org, owner_id=users["sales"].id)
    response = client.post(f"/leads/{lead.id}/delete", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="lead-main"' in html and f"/leads/{lead.id}/restore" in html
    assert client.get(f"/leads/{lead.id}").status_code == 404
    undo = client.post(f"/leads/{lead.id}/restore", headers=HX)
    assert undo.status_code == 204 and client.get(f"/leads/{lead.id}").status_code == 200

"""Company pages: list (filter, search, sort, pages, bulk delete + undo, CSV), detail, contacts panel,
forms, delete + undo; budgets, fragments, bad input, CSRF, permissions, escaping."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import pytest
from flask import get_template_attribute
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Company, ContactCompany, company_tags
from crm_web.services.base import Actor
from crm_web.services.companies import CompanyService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS

XSS = '<script>alert("x")</script>'


def make_companies(org, n, **values):
    tag = factories.make_tag(org, name=f"T{uuid.uuid4().hex[:6]}")
    pipeline = factories.make_pipeline(org, is_default=False)
    companies = []
    for i in range(n):
        company = factories.make_company(org, name=f"Company {i:03d}", **values)
        db.session.execute(company_tags.insert().values(company_id=company.id, tag_id=tag.id))
        factories.make_contact(org, primary_company_id=company.id)
        factories.make_deal(org, pipeline=pipeline, company_id=company.id, value=Decimal("10"))
        companies.append(company)
    db.session.commit()
    return companies


# --- list ---------------------------------------------------------------------------------------


def test_list_page_shows_counts_and_is_escaped(client, login, org):
    login("sales")
    company = factories.make_company(org, name=XSS, industry="Software")
    factories.make_contact(org, primary_company_id=company.id)
    response = client.get("/companies")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html and 'id="company-table"' in html
    assert XSS not in html and "&lt;script&gt;alert(" in html
    assert "HX-Request" in response.headers.get("Vary", "")


def test_list_fragment_is_the_table_block_with_pushed_url(client, login, org):
    login("sales")
    make_companies(org, 2)
    response = client.get("/companies?q=company&sort=-name", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<div id="company-table"')
    assert response.headers["HX-Push-Url"].startswith("/companies?")
    assert html.index("Company 001") < html.index("Company 000")


@pytest.mark.parametrize("per_page", [10, 100])
def test_list_budget_is_constant(client, login, org, count_queries, per_page):
    login("sales")
    make_companies(org, 1)
    client.get("/companies")  # the first reads the saved-view tabs and caches them
    with count_queries() as one:
        assert client.get(f"/companies?per_page={per_page}&f=name.contains.Company").status_code == 200
    make_companies(org, 30)
    with count_queries() as many:
        assert client.get(f"/companies?per_page={per_page}&f=name.contains.Company").status_code == 200
    assert one.count == many.count <= 4 + LOGIN_STATEMENTS


def test_list_filter_applies_and_invalid_filter_is_inline(client, login, org):
    login("sales")
    factories.make_company(org, name="Alpha", industry="Retail")
    factories.make_company(org, name="Beta", industry="Software")
    html = client.get("/companies?f=industry.equals.Retail").get_data(as_text=True)
    assert "Alpha" in html and "Beta" not in html
    bad = client.get("/companies?f=industry.bogus.x", headers=HX)
    assert bad.status_code == 422 and bad.headers["HX-Retarget"] == "#filter-builder"
    assert 'id="filter-builder"' in bad.get_data(as_text=True)
    page = client.get("/companies?f=nosuchfield.equals.x")
    assert page.status_code == 422 and "was not applied" in page.get_data(as_text=True)


@pytest.mark.parametrize("query", ["page=abc", "per_page=-1", "per_page=1000", "sort=password", "scope=everyone"])
def test_list_bad_params_are_400(client, login, query):
    login("sales")
    assert client.get(f"/companies?{query}").status_code == 400


def test_list_scope_mine(client, login, org, users):
    login("sales")
    factories.make_company(org, name="Mine", owner_id=users["sales"].id)
    factories.make_company(org, name="Theirs", owner_id=users["manager"].id)
    html = client.get("/companies?scope=mine").get_data(as_text=True)
    assert "Mine" in html and "Theirs" not in html


def test_list_other_org_invisible(client, login, org, other_org):
    login("sales")
    factories.make_company(other_org, name="Foreign Inc")
    assert "Foreign Inc" not in client.get("/companies").get_data(as_text=True)


def test_export_streams_filtered_csv(client, login, org):
    login("sales")
    factories.make_company(org, name='Quote "Co", Ltd', industry="Retail")
    factories.make_company(org, name="=cmd()", industry="Retail")
    factories.make_company(org, name="Zürich AG", industry="Software")
    response = client.get("/companies/export.csv?f=industry.equals.Retail&sort=name")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    text = response.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "Name" and [r[0] for r in rows[1:]] == ["'=cmd()", 'Quote "Co", Ltd']
    assert "Zürich" in client.get("/companies/export.csv").get_data(as_text=True)


def test_export_with_bad_filter_is_400(client, login):
    login("sales")
    assert client.get("/companies/export.csv?f=bogus.equals.x").status_code == 400


def test_bulk_delete_then_undo(client, login, org):
    login("admin")
    companies = make_companies(org, 3)
    ids = [str(c.id) for c in companies[:2]]
    response = client.post("/companies/bulk/delete", data={"ids": ids}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="company-table"' in html
    assert "Deleted 2 companies." in html and "Undo" in html and "companies/bulk/restore" in html
    assert "Company 000" not in html.split("toast")[0] and "Company 002" in html
    restored = client.post("/companies/bulk/restore", data={"ids": ids}, headers=HX)
    assert "Restored 2 companies." in restored.get_data(as_text=True)
    assert (
        db.session.scalars(select(Company.deleted_at).where(Company.id.in_([c.id for c in companies]))).all()
        == [None] * 3
    )


def test_bulk_delete_without_htmx_redirects(client, login, org):
    login("admin")
    company = factories.make_company(org)
    response = client.post("/companies/bulk/delete", data={"ids": [str(company.id)]})
    assert response.status_code == 303


def test_bulk_delete_bad_ids_and_csrf(client, login, org):
    login("admin")
    company = factories.make_company(org)
    assert client.post("/companies/bulk/delete", data={"ids": ["not-a-uuid"]}, headers=HX).status_code == 400
    assert client.post("/companies/bulk/delete", data={"ids": [str(company.id)]}, csrf=False).status_code == 400
    stored = select(Company.deleted_at).where(Company.id == company.id).execution_options(include_deleted=True)
    assert db.session.execute(stored).scalar_one() is None  # still there, and not in the trash


def test_bulk_delete_by_sales_of_others_is_403(client, login, org, users):
    login("sales")
    company = factories.make_company(org, owner_id=users["manager"].id)
    response = client.post("/companies/bulk/delete", data={"ids": [str(company.id)]}, headers=HX)
    assert response.status_code == 403


# --- detail and contacts panel --------------------------------------------------------------------


def _company_with_everything(org, n_contacts):
    company = factories.make_company(org, name="Acme")
    pipeline = factories.make_pipeline(org, is_default=False)
    tag = factories.make_tag(org, name=f"VIP {uuid.uuid4().hex[:6]}")
    for i in range(n_contacts):
        contact = factories.make_contact(org, first_name=f"P{i}", primary_company_id=company.id)
        db.session.execute(
            contact.__class__.tags.property.secondary.insert().values(contact_id=contact.id, tag_id=tag.id)
        )
        factories.make_deal(
            org, pipeline=pipeline, company_id=company.id, contact_id=contact.id, status=("open", "won", "lost")[i % 3]
        )
        factories.make_activity(org, company_id=company.id, contact_id=contact.id)
        associate = factories.make_contact(org, first_name=f"A{i}")
        db.session.add(ContactCompany(org_id=org.id, contact_id=associate.id, company_id=company.id, role="Advisor"))
    db.session.commit()
    return company


def test_detail_budget_is_constant(client, login, org, count_queries):
    login("sales")
    small = _company_with_everything(org, 1)
    big = _company_with_everything(org, 20)
    counts = []
    for company in (small, big):
        with count_queries() as q:
            response = client.get(f"/companies/{company.id}")
        assert response.status_code == 200
        counts.append(q.count)
    # The page as it arrives, contacts and activity timeline included: no request of their own.
    assert counts[0] == counts[1] <= 7 + LOGIN_STATEMENTS


def test_detail_shows_stats_deals_contacts_and_activities(client, login, org):
    login("sales")
    company = _company_with_everything(org, 3)
    html = client.get(f"/companies/{company.id}").get_data(as_text=True)
    assert "1 open · 1 won · 1 lost" in html
    assert 'hx-trigger="load"' not in html  # nothing is left to load after the page
    contacts = html[html.index('id="company-contacts"') : html.index('id="activity-timeline"')]
    assert contacts.count("Advisor") == 3 and contacts.count("Primary") == 3 and "P2" in contacts and "A2" in contacts
    timeline = html[html.index('id="activity-timeline"') :]
    assert timeline.count('class="timeline-item') == 3


def test_the_contacts_card_says_when_it_shows_only_the_first_of_them(app, org, users):
    company = _company_with_everything(org, 2)  # two primary contacts, two associated
    members = CompanyService(Actor.of(users["admin"])).members(company.id)
    card = get_template_attribute("components/company_contacts.html", "company_contacts")
    with app.test_request_context():
        assert "The first 4 of 250 contacts." in card(members, 250)
        assert "The first" not in card(members, len(members))


def test_contacts_panel_budget_roles_and_fragment(client, login, org, count_queries):
    login("sales")
    small = _company_with_everything(org, 1)
    big = _company_with_everything(org, 30)
    counts = []
    for company in (small, big):
        with count_queries() as q:
            response = client.get(f"/companies/{company.id}/contacts", headers=HX)
        counts.append(q.count)
    html = response.get_data(as_text=True)
    assert counts[0] == counts[1] <= 3 + LOGIN_STATEMENTS
    assert "<html" not in html and html.lstrip().startswith('<section class="card" id="company-contacts"')
    assert "Advisor" in html and "Primary" in html and "VIP" in html
    page = client.get(f"/companies/{big.id}/contacts")
    assert "<html" in page.get_data(as_text=True)


def test_detail_of_junk_other_org_and_deleted_ids_is_404(client, login, org, other_org):
    login("sales")
    foreign = factories.make_company(other_org)
    gone = factories.make_company(org, deleted_at=factories.datetime.now(factories.UTC))
    for url in (
        "/companies/not-a-uuid",
        f"/companies/{foreign.id}",
        f"/companies/{gone.id}",
        f"/companies/{foreign.id}/contacts",
        f"/companies/{foreign.id}/edit",
        f"/companies/{uuid.uuid4()}",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/companies/{foreign.id}/delete", headers=HX).status_code == 404


def test_detail_escapes_user_text(client, login, org):
    login("sales")
    company = factories.make_company(org, name=XSS, description=XSS, city=XSS)
    html = client.get(f"/companies/{company.id}").get_data(as_text=True)
    assert XSS not in html and html.count("&lt;script&gt;") >= 3


# --- delete and restore from the detail page ------------------------------------------------------


def test_delete_from_detail_then_undo(client, login, org):
    login("sales")
    company = factories.make_company(org, name="Doomed")
    contact = factories.make_contact(org, primary_company_id=company.id)
    response = client.post(f"/companies/{company.id}/delete", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="company-main"' in html and "<html" not in html
    assert f"/companies/{company.id}/restore" in html and "Undo" in html
    assert client.get(f"/companies/{company.id}").status_code == 404
    assert db.session.get(contact.__class__, contact.id).primary_company_id == company.id
    undo = client.post(f"/companies/{company.id}/restore", headers=HX)
    assert undo.status_code == 204 and f"/companies/{company.id}" in undo.headers["HX-Location"]
    assert client.get(f"/companies/{company.id}").status_code == 200


def test_delete_without_htmx_redirects_and_needs_csrf(client, login, org):
    login("sales")
    company = factories.make_company(org)
    assert client.post(f"/companies/{company.id}/delete", csrf=False).status_code == 400
    response = client.post(f"/companies/{company.id}/delete")
    assert response.status_code == 303 and response.headers["Location"].endswith("/companies")


def test_sales_cannot_delete_or_edit_someone_elses_company(client, login, org, users):
    login("sales")
    company = factories.make_company(org, owner_id=users["manager"].id, name="Theirs")
    assert client.post(f"/companies/{company.id}/delete", headers=HX).status_code == 403
    assert client.get(f"/companies/{company.id}/edit").status_code == 403
    assert client.post(f"/companies/{company.id}", data={"name": "Hijack"}).status_code == 403
    stored = select(Company.name, Company.deleted_at).where(Company.id == company.id)
    assert db.session.execute(stored.execution_options(include_deleted=True)).one() == ("Theirs", None)


# --- create and edit --------------------------------------------------------------------------------


def test_new_form_renders(client, login):
    login("sales")
    response = client.get("/companies/new")
    assert response.status_code == 200 and 'id="company-form"' in response.get_data(as_text=True)


def test_create_redirects_to_the_new_company(client, login, users):
    login("sales")
    response = client.post(
        "/companies",
        data={
            "name": "Initech",
            "industry": "Software",
            "size": "11-50",
            "employee_count": "20",
            "owner_id": str(users["sales"].id),
        },
    )
    assert response.status_code == 303
    company = db.session.scalars(select(Company).where(Company.name == "Initech")).one()
    assert response.headers["Location"].endswith(f"/companies/{company.id}")
    assert company.employee_count == 20 and company.size == "11-50"


def test_create_via_htmx_navigates_with_hx_location(client, login):
    login("sales")
    response = client.post("/companies", data={"name": "Hooli", "owner_id": ""}, headers=HX)
    assert response.status_code == 204 and "/companies/" in response.headers["HX-Location"]


def test_create_errors_rerender_the_form_inline(client, login):
    login("sales")
    response = client.post(
        "/companies",
        data={"name": "", "email": "nope", "employee_count": "-3", "owner_id": str(uuid.uuid4())},
        headers=HX,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in html
    assert html.lstrip().startswith('<form id="company-form"')
    assert html.count('class="field-error"') >= 3


def test_create_needs_csrf(client, login):
    login("sales")
    assert client.post("/companies", data={"name": "NoToken"}, csrf=False).status_code == 400
    assert db.session.scalars(select(Company).where(Company.name == "NoToken")).first() is None


def test_edit_and_update(client, login, org, users):
    login("sales")
    company = factories.make_company(org, name="Old", owner_id=users["sales"].id)
    form = client.get(f"/companies/{company.id}/edit").get_data(as_text=True)
    assert 'value="Old"' in form
    response = client.post(f"/companies/{company.id}", data={"name": "New", "owner_id": str(users["sales"].id)})
    assert response.status_code == 303
    assert db.session.scalar(select(Company.name).where(Company.id == company.id)) == "New"

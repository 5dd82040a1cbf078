"""Record pickers: the type-ahead's matches (org-scoped, at most 20, one statement), its page, the
inline "Create company", and form pages whose size and statements do not follow the company count."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import insert, select

from crm_web.extensions import db
from crm_web.models import Company, Contact, Deal, User
from crm_web.services.pickers import LIMIT, PickerService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


@pytest.fixture
def picker(actor):
    return PickerService(actor)


def test_matches_are_this_orgs_live_records_at_most_twenty(org, other_org, picker, count_queries):
    for i in range(30):
        factories.make_company(org, name=f"Acme {i:02d}")
    factories.make_company(org, name="Globex")
    trashed = factories.make_company(org, name="Acme Trashed")
    trashed.deleted_at = trashed.created_at
    db.session.commit()
    factories.make_company(other_org, name="Acme Elsewhere")
    with count_queries() as q:
        found = picker.matches("company", "acme")
    assert q.count == 1
    assert len(found) == LIMIT
    assert all(p.label.startswith("Acme ") and p.label not in ("Acme Trashed", "Acme Elsewhere") for p in found)
    assert [p.label for p in picker.matches("company", "glob")] == ["Globex"]
    assert [p.label for p in picker.matches("company", "lob")] == ["Globex"]  # a longer word: anywhere
    assert [p.label for p in picker.matches("company", "g")] == ["Globex"]  # a short one: where names start
    assert len(picker.matches("company", "")) == LIMIT  # an empty box lists names in order


def test_people_deals_leads_and_owners(org, users, picker):
    factories.make_contact(org, first_name="David", last_name="Smith", email="dave@example.org")
    factories.make_lead(org, first_name="Lena", last_name="Lead")
    stage = factories.stages_of(factories.make_pipeline(org))[0]
    factories.make_deal(org, stage=stage, name="Renewal 2027")
    assert [p.label for p in picker.matches("contact", "david sm")] == ["David Smith"]
    assert [p.label for p in picker.matches("contact", "dave@")] == ["David Smith"]
    assert [p.label for p in picker.matches("lead", "lena")] == ["Lena Lead"]
    assert [p.label for p in picker.matches("deal", "renewal")] == ["Renewal 2027"]
    owner = users["sales"]
    assert owner.id in [p.id for p in picker.matches("owner", owner.name[:4])]


def test_labels_name_only_this_orgs_records_in_one_statement(org, other_org, picker, count_queries):
    mine = factories.make_company(org, name="Mine Inc")
    theirs = factories.make_company(other_org, name="Theirs Inc")
    contact = factories.make_contact(org, first_name="Ann", last_name="Bee")
    with count_queries() as q:
        labels = picker.labels(
            {
                "a": ("company", mine.id),
                "b": ("company", theirs.id),
                "c": ("contact", str(contact.id)),
                "d": ("deal", "x"),
            }
        )
    assert q.count == 1
    assert labels == {"a": "Mine Inc", "c": "Ann Bee"}
    with count_queries() as q:
        assert picker.labels({"a": ("company", None)}) == {}
    assert q.count == 0


def test_pick_view_offers_matches_and_create(client, login, org):
    login("sales")
    factories.make_company(org, name="Initech")
    html = client.get("/search/pick/company?q=init&field=contact-company", headers=HX).text
    assert 'role="option"' in html and 'data-label="Initech"' in html and "<html" not in html
    assert "Create company “init”" in html  # not an exact name: may be created
    html = client.get("/search/pick/company?q=Initech", headers=HX).text
    assert "Create company" not in html
    assert "Create company" not in client.get("/search/pick/contact?q=zzz", headers=HX).text
    assert client.get("/search/pick/nothing?q=a", headers=HX).status_code == 404
    assert 'id="x-opt-1"' not in client.get('/search/pick/company?q=init&field="><x', headers=HX).text


def test_quick_create_company(client, login, org, other_org):
    login("sales")
    response = client.post("/companies/quick", data={"name": "  Hooli  "})
    assert response.status_code == 201
    created = db.session.get(Company, uuid.UUID(response.json["id"]))
    assert (created.name, created.org_id, response.json["label"]) == ("Hooli", org.id, "Hooli")
    refused = client.post("/companies/quick", data={"name": "  "})
    assert refused.status_code == 422 and refused.json["error"]


def test_contact_form_refuses_another_orgs_company(client, login, org, other_org):
    login("admin")
    theirs = factories.make_company(other_org, name="Theirs")
    response = client.post("/contacts", data={"first_name": "Zed", "primary_company_id": str(theirs.id)}, headers=HX)
    assert response.status_code == 422
    assert "That company does not exist." in response.text
    assert db.session.scalar(select(Contact).where(Contact.first_name == "Zed")) is None
    junk = client.post("/contacts", data={"first_name": "Zed", "primary_company_id": "abc"}, headers=HX)
    assert junk.status_code == 422 and "Choose one of the suggestions." in junk.text


def test_forms_keep_the_chosen_names(client, login, org):
    login("admin")
    company = factories.make_company(org, name="Chosen Co")
    contact = factories.make_contact(org, first_name="Cy", primary_company_id=company.id)
    html = client.get(f"/contacts/{contact.id}/edit").text
    assert f'name="primary_company_id" id="primary_company_id" value="{company.id}"' in html
    assert 'value="Chosen Co"' in html
    stage = factories.stages_of(factories.make_pipeline(org))[0]
    deal = factories.make_deal(org, stage=stage, name="D", company_id=company.id, contact_id=contact.id)
    html = client.get(f"/deals/{deal.id}/edit").text
    assert 'value="Chosen Co"' in html and 'value="Cy' in html
    # a refused save shows the chosen name again
    response = client.post(
        f"/deals/{deal.id}", data={"name": "", "stage_id": str(stage.id), "company_id": str(company.id)}, headers=HX
    )
    assert response.status_code == 422 and 'value="Chosen Co"' in response.text
    assert db.session.get(Deal, deal.id).name == "D"


def _add_companies(org, count: int) -> None:
    db.session.execute(insert(Company), [{"org_id": org.id, "name": f"Bulk {i:05d}"} for i in range(count)])
    db.session.commit()


def _cost(client, url, count_queries) -> tuple[int, int]:
    client.get(url)  # warm the caches (pipelines)
    with count_queries() as q:
        response = client.get(url)
    assert response.status_code == 200
    html = re.sub(r'name="csrf_token" value="[^"]+"|"X-CSRFToken": "[^"]+"', "", response.text)
    return q.count, len(html)


@pytest.mark.slow
def test_form_pages_do_not_grow_with_the_companies(client, login, org, count_queries):
    login("admin")
    factories.make_pipeline(org)
    company = factories.make_company(org, name="Linked Co")
    contact = factories.make_contact(org, first_name="Lin", primary_company_id=company.id)
    _add_companies(org, 5)
    urls = [
        "/contacts/new",
        f"/contacts/{contact.id}/edit",
        "/deals/new",
        f"/activities/new?contact={contact.id}",
    ]
    few = [_cost(client, url, count_queries) for url in urls]
    _add_companies(org, 5000)
    many = [_cost(client, url, count_queries) for url in urls]
    assert few == many
    contact_new, contact_edit, _, _ = many
    assert contact_new[0] <= 1 + LOGIN_STATEMENTS  # owners
    assert contact_edit[0] <= 4 + LOGIN_STATEMENTS  # the contact, its tags, owners, the email check


def test_a_large_team_picks_owners_by_typing(client, login, org, other_org, users, count_queries):
    login("admin")
    html = client.get("/contacts/new").text
    assert re.search(r'<select[^>]*name="owner_id"', html)  # a small team: a select
    db.session.execute(
        insert(User),
        [
            {
                "org_id": org.id,
                "email": f"member{i}@example.org",
                "name": f"Member {i:02d}",
                "role": "sales",
                "active": True,
                "password_hash": "x",
            }
            for i in range(50)
        ],
    )
    db.session.commit()
    stranger = factories.make_user(other_org, email="stranger@example.org", name="Stranger")
    member = users["sales"]
    for url in ("/contacts/new", "/companies/new", "/leads/new", "/deals/new", "/activities/new"):
        html = client.get(url).text
        assert 'hx-get="/search/pick/owner"' in html and not re.search(r'<select[^>]*name="owner_id"', html), url
    response = client.post("/contacts", data={"first_name": "Own", "owner_id": str(member.id)}, headers=HX)
    assert response.status_code == 204 and "HX-Location" in response.headers  # saved
    contact = db.session.scalar(select(Contact).where(Contact.first_name == "Own"))
    assert contact.owner_id == member.id
    html = client.get(f"/contacts/{contact.id}/edit").text
    assert f'value="{member.name}"' in html
    refused = client.post("/contacts", data={"first_name": "Nope", "owner_id": str(stranger.id)}, headers=HX)
    assert refused.status_code == 422 and "Choose a user of your organisation." in refused.text

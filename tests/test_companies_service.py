"""CompanyService: list annotations, search/scope/filter/sort, stats, contacts panel, writes, soft delete."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from crm_web.entities import COMPANY
from crm_web.errors import BadRequest, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import Company, Contact, ContactCompany, Deal, RecordHistory
from crm_web.services.activities import ActivityService, Links
from crm_web.services.base import Actor
from crm_web.services.companies import CompanyService
from tests import factories


def link(org, contact, company, role=None):
    row = ContactCompany(org_id=org.id, contact_id=contact.id, company_id=company.id, role=role)
    db.session.add(row)
    db.session.commit()
    return row


def service(user):
    return CompanyService(Actor.of(user))


@pytest.fixture
def world(org, users):
    """Two companies: Acme with primary + associated contacts and deals in every status; Bare with nothing."""
    acme = factories.make_company(org, name="Acme Corp", industry="Software", owner_id=users["sales"].id)
    bare = factories.make_company(org, name="Bare Ltd", industry="Retail")
    alice = factories.make_contact(org, first_name="Alice", last_name="Adams", primary_company_id=acme.id)
    bob = factories.make_contact(org, first_name="Bob", last_name="Brown")
    link(org, bob, acme, role="Board member")
    both = factories.make_contact(org, first_name="Cara", last_name="Cole", primary_company_id=acme.id)
    link(org, both, acme, role="Champion")
    gone = factories.make_contact(
        org,
        first_name="Gone",
        last_name="Ghost",
        primary_company_id=acme.id,
        deleted_at=factories.datetime.now(factories.UTC),
    )
    pipeline = factories.make_pipeline(org)
    factories.make_deal(org, pipeline=pipeline, company_id=acme.id, contact_id=alice.id, value=Decimal("100"))
    factories.make_deal(org, pipeline=pipeline, company_id=acme.id, value=Decimal("200.50"))
    factories.make_deal(org, pipeline=pipeline, company_id=acme.id, status="won", value=Decimal("1000"))
    factories.make_deal(org, pipeline=pipeline, company_id=acme.id, status="lost", value=Decimal("7"))
    factories.make_deal(
        org,
        pipeline=pipeline,
        company_id=acme.id,
        value=Decimal("999"),
        deleted_at=factories.datetime.now(factories.UTC),
    )
    factories.make_activity(org, company_id=acme.id, contact_id=alice.id)
    factories.make_activity(org, contact_id=alice.id)
    return {"acme": acme, "bare": bare, "alice": alice, "bob": bob, "both": both, "gone": gone}


def test_list_annotates_contact_count_and_open_deal_value(users, world):
    page = service(users["admin"]).list_page(sort="name")
    rows = {row.company.name: row for row in page.items}
    assert page.total == 2
    assert rows["Acme Corp"].contact_count == 3  # primary, associated, both (once); the deleted one is not counted
    assert rows["Acme Corp"].open_deal_value == Decimal("300.50")
    assert rows["Bare Ltd"].contact_count == 0 and rows["Bare Ltd"].open_deal_value == 0


def test_list_search_scope_sort_and_filter(users, world):
    svc = service(users["sales"])
    assert [r.company.name for r in svc.list_page(q="acme").items] == ["Acme Corp"]
    assert [r.company.name for r in svc.list_page(q="ACME corp").items] == ["Acme Corp"]
    assert svc.list_page(q="100%").total == 0  # wildcards are literal
    assert [r.company.name for r in svc.list_page(scope="mine").items] == ["Acme Corp"]
    assert [r.company.name for r in svc.list_page(sort="-name").items] == ["Bare Ltd", "Acme Corp"]
    assert [r.company.name for r in svc.list_page(sort="-contacts").items] == ["Acme Corp", "Bare Ltd"]
    assert [r.company.name for r in svc.list_page(sort="open_value").items] == ["Bare Ltd", "Acme Corp"]
    spec = parse_filter(MultiDict([("f", "industry.equals.Retail")]), COMPANY.filters)
    assert [r.company.name for r in svc.list_page(filter_spec=spec).items] == ["Bare Ltd"]


def test_list_rejects_unknown_sort(users, world):
    with pytest.raises(BadRequest):
        service(users["admin"]).list_page(sort="password")


def test_list_never_shows_another_orgs_companies(users, world, other_org):
    factories.make_company(other_org, name="Acme Elsewhere")
    assert [r.company.name for r in service(users["admin"]).list_page(q="acme").items] == ["Acme Corp"]


def test_list_costs_three_statements_whatever_the_page_size(users, org, count_queries):
    for n in range(30):
        company = factories.make_company(org, name=f"Co {n:02d}")
        factories.make_contact(org, primary_company_id=company.id)
    tag = factories.make_tag(org)
    svc = service(users["admin"])
    counts = []
    for per_page in (1, 25):
        with count_queries() as q:
            page = svc.list_page(per_page=per_page)
            assert all(row.company.tags == [] or row.company.tags for row in page.items)
        counts.append(q.count)
    assert counts == [3, 3]
    assert tag


def test_stats_are_one_aggregate_of_deals_and_contacts(users, org, world, count_queries):
    svc = service(users["admin"])
    with count_queries() as q:
        stats = svc.stats(world["acme"].id)
    assert q.count == 1
    assert (stats.deal_count, stats.open_deals, stats.won_deals, stats.lost_deals) == (4, 2, 1, 1)
    assert stats.total_deal_value == Decimal("1307.50")
    assert stats.won_deal_value == Decimal("1000")
    assert stats.contact_count == 3
    empty = svc.stats(world["bare"].id)
    assert (empty.deal_count, empty.total_deal_value, empty.contact_count) == (0, 0, 0)
    # No deal to aggregate: the contacts are still counted.
    factories.make_contact(org, primary_company_id=world["bare"].id)
    assert svc.stats(world["bare"].id).contact_count == 1


def test_detail_is_seven_statements(users, world, count_queries):
    svc = service(users["admin"])
    svc.update(world["acme"].id, description="Tools")
    with count_queries() as q:
        detail = svc.detail(world["acme"].id)
        # Everything the page touches is loaded.
        _ = [(d.stage.name, d.contact and d.contact.full_name, d.owner) for d in detail.deals]
        _ = [entry.actor for entry in detail.history]
        _ = (detail.company.owner.name, detail.company.tags)
        _ = [(m.contact.full_name, m.contact.tags) for m in detail.members]
        _ = [(a.subject, a.owner) for a in detail.timeline]
    # company, one aggregate of its deals and contacts, deals, history, contacts with their tags (2),
    # the activity timeline
    assert q.count == 7
    assert len(detail.deals) == 4 and [entry.action for entry in detail.history] == ["updated"]
    assert [m.contact.first_name for m in detail.members] == ["Alice", "Cara", "Bob"]
    assert detail.timeline == ActivityService(Actor.of(users["admin"])).timeline(links=Links(company=world["acme"].id))
    assert len(detail.timeline) == 1


def test_detail_of_another_org_or_deleted_company_is_not_found(users, world, other_org):
    foreign = factories.make_company(other_org, name="Foreign")
    svc = service(users["admin"])
    with pytest.raises(NotFound):
        svc.detail(foreign.id)
    with pytest.raises(NotFound):
        svc.contacts(foreign.id)
    svc.delete(world["bare"].id)
    with pytest.raises(NotFound):
        svc.detail(world["bare"].id)


def test_contacts_primary_first_with_roles_tags_and_counts(users, org, world, count_queries):
    tag = factories.make_tag(org, name="VIP")
    db.session.execute(Contact.tags.property.secondary.insert().values(contact_id=world["alice"].id, tag_id=tag.id))
    db.session.commit()
    svc = service(users["admin"])
    with count_queries() as q:
        company, contacts = svc.contacts(world["acme"].id)
        _ = [(c.contact.tags, c.contact.primary_company, c.contact.owner) for c in contacts]
    assert q.count == 3
    assert company.id == world["acme"].id
    by_name = {c.contact.first_name: c for c in contacts}
    assert [c.contact.first_name for c in contacts] == ["Alice", "Cara", "Bob"]
    assert by_name["Alice"].is_primary and by_name["Alice"].role is None
    assert by_name["Alice"].deal_count == 1 and by_name["Alice"].activity_count == 2
    assert [t.name for t in by_name["Alice"].contact.tags] == ["VIP"]
    assert not by_name["Bob"].is_primary and by_name["Bob"].role == "Board member"
    assert by_name["Cara"].is_primary and by_name["Cara"].role == "Champion"


def test_contacts_cost_the_same_for_one_or_many(users, org, count_queries):
    company = factories.make_company(org)
    svc = service(users["admin"])
    counts = []
    for n in (1, 40):
        while len(svc.contacts(company.id)[1]) < n:
            factories.make_contact(org, primary_company_id=company.id)
        with count_queries() as q:
            svc.contacts(company.id)
        counts.append(q.count)
    assert counts == [3, 3]


def test_create_validates_and_records_history(users, org):
    svc = service(users["sales"])
    with pytest.raises(ValidationError) as error:
        svc.create(name="   ", size="huge", employee_count=-1)
    assert set(error.value.field_errors) == {"name", "size", "employee_count"}
    company = svc.create(name="  Initech ", size="11-50", owner_id=None)
    assert company.name == "Initech" and company.owner_id == users["sales"].id
    actions = db.session.scalars(select(RecordHistory.action).where(RecordHistory.entity_id == company.id)).all()
    assert actions == ["created"]


def test_owner_must_belong_to_the_org(users, org, other_org):
    stranger = factories.make_user(other_org)
    with pytest.raises(ValidationError) as error:
        service(users["admin"]).create(name="X", owner_id=stranger.id)
    assert "owner_id" in error.value.field_errors


def test_sales_cannot_edit_or_delete_someone_elses_company(users, org):
    company = factories.make_company(org, name="Theirs", owner_id=users["manager"].id)
    with pytest.raises(PermissionDenied):
        service(users["sales"]).update(company.id, name="Mine now")
    with pytest.raises(PermissionDenied):
        service(users["sales"]).delete(company.id)
    assert service(users["manager"]).update(company.id, name="Renamed").name == "Renamed"


def test_soft_delete_keeps_contacts_and_deals_and_restore_brings_it_back(users, world):
    svc = service(users["admin"])
    acme = world["acme"]
    svc.delete(acme.id)
    assert db.session.scalar(select(Contact.primary_company_id).where(Contact.id == world["alice"].id)) == acme.id
    assert db.session.scalar(select(Deal.id).where(Deal.company_id == acme.id).limit(1)) is not None
    assert svc.list_page().total == 1
    svc.restore(acme.id)
    assert svc.stats(acme.id).contact_count == 3


def test_bulk_delete_and_restore(users, world):
    svc = service(users["admin"])
    ids = [world["acme"].id, world["bare"].id]
    assert sorted(svc.delete_many(ids)) == sorted(ids)
    assert svc.list_page().total == 0
    assert sorted(svc.restore_many(ids)) == sorted(ids)
    assert svc.list_page().total == 2


def test_bulk_delete_ignores_other_orgs_ids(users, world, other_org):
    foreign = factories.make_company(other_org)
    assert service(users["admin"]).delete_many([foreign.id]) == []
    assert db.session.get(Company, foreign.id).deleted_at is None


def test_export_rows_stream_the_filtered_list(users, world):
    rows = [COMPANY.csv_values(row) for row in service(users["admin"]).export_rows(q="acme")]
    assert len(rows) == 1
    assert rows[0][0] == "Acme Corp" and rows[0][11] == 3 and Decimal(rows[0][12]) == Decimal("300.50")

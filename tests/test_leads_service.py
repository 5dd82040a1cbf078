"""LeadService: list, writes, the status flow and conversion (one transaction, once only)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from crm_web.entities import LEAD
from crm_web.errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import Company, Contact, Deal, Lead, RecordHistory, lead_tags
from crm_web.services.activities import ActivityService, Links
from crm_web.services.base import Actor
from crm_web.services.leads import LeadService
from tests import factories


def service(user):
    return LeadService(Actor.of(user))


def tag_lead(lead, *tags):
    for tag in tags:
        db.session.execute(lead_tags.insert().values(lead_id=lead.id, tag_id=tag.id))
    db.session.commit()


def actions(entity_id):
    return db.session.scalars(
        select(RecordHistory.action).where(RecordHistory.entity_id == entity_id).order_by(RecordHistory.created_at)
    ).all()


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_list_search_scope_sort_filter(users, org, other_org):
    factories.make_lead(
        org, first_name="Ann", last_name="Zed", company_name="Globex", score=10, owner_id=users["sales"].id
    )
    factories.make_lead(org, first_name="Ben", last_name="Young", company_name="Initech", score=90, status="qualified")
    factories.make_lead(other_org, first_name="Ann", company_name="Globex")
    svc = service(users["sales"])
    assert svc.list_page().total == 2
    assert [lead.first_name for lead in svc.list_page(q="glob").items] == ["Ann"]
    assert [lead.first_name for lead in svc.list_page(scope="mine").items] == ["Ann"]
    assert [lead.first_name for lead in svc.list_page(sort="-score").items] == ["Ben", "Ann"]
    assert [lead.first_name for lead in svc.list_page(sort="name").items] == ["Ben", "Ann"]
    spec = parse_filter(MultiDict([("f", "status.equals.qualified")]), LEAD.filters)
    assert [lead.first_name for lead in svc.list_page(filter_spec=spec).items] == ["Ben"]
    with pytest.raises(BadRequest):
        svc.list_page(sort="nope")


def test_list_costs_three_statements_for_one_or_many(users, org, count_queries):
    tag = factories.make_tag(org)
    svc = service(users["admin"])
    counts = []
    for n in (1, 60):
        while svc.list_page().total < n:
            tag_lead(factories.make_lead(org, owner_id=users["sales"].id), tag)
        with count_queries() as q:
            page = svc.list_page(per_page=100)
            _ = [(lead.owner.name, [t.name for t in lead.tags]) for lead in page.items]
        counts.append(q.count)
    assert counts == [3, 3]


def test_create_and_update_validate(users, org, other_org):
    svc = service(users["sales"])
    with pytest.raises(ValidationError) as error:
        svc.create(first_name=" ", score=101, estimated_value=Decimal("-1"), source="carrier pigeon")
    assert set(error.value.field_errors) == {"first_name", "score", "estimated_value", "source"}
    lead = svc.create(first_name="Ann", last_name="", email=" ann@x.test ", status="converted")
    assert lead.status == "new" and lead.email == "ann@x.test" and lead.owner_id == users["sales"].id
    with pytest.raises(ValidationError):
        svc.update(lead.id, owner_id=factories.make_user(other_org).id)
    svc.update(lead.id, score=55)
    assert actions(lead.id) == ["created", "updated"]


def test_sales_cannot_edit_someone_elses_lead(users, org):
    lead = factories.make_lead(org, owner_id=users["manager"].id)
    with pytest.raises(PermissionDenied):
        service(users["sales"]).update(lead.id, first_name="X")
    with pytest.raises(PermissionDenied):
        service(users["sales"]).set_status(lead.id, status="contacted")
    with pytest.raises(PermissionDenied):
        service(users["sales"]).convert(lead.id, create_deal=False)


def test_status_flow(users, org):
    lead = factories.make_lead(org)
    svc = service(users["admin"])
    for status in ("contacted", "qualified", "unqualified", "new"):
        assert svc.set_status(lead.id, status=status).status == status
    with pytest.raises(ValidationError):
        svc.set_status(lead.id, status="converted")
    with pytest.raises(ValidationError):
        svc.set_status(lead.id, status="bogus")
    history = db.session.scalars(select(RecordHistory).where(RecordHistory.entity_id == lead.id)).all()
    assert [h.changes["status"][1] for h in history] == ["contacted", "qualified", "unqualified", "new"]


def test_convert_creates_contact_company_and_deal_in_one_go(users, org):
    pipeline = factories.make_pipeline(org, is_default=True)
    factories.make_pipeline(org, is_default=False)
    first_stage = factories.stages_of(pipeline)[0]
    vip, hot = factories.make_tag(org, name="VIP"), factories.make_tag(org, name="Hot")
    lead = factories.make_lead(
        org,
        first_name="Ann",
        last_name="Lee",
        email="ann@initech.test",
        company_name="Initech",
        website="initech.test",
        source="referral",
        estimated_value=Decimal("5000"),
        owner_id=users["sales"].id,
    )
    tag_lead(lead, vip, hot)
    result = service(users["sales"]).convert(lead.id, create_deal=True)

    assert result.company_created and result.company.name == "Initech" and result.company.website == "initech.test"
    contact = db.session.get(Contact, result.contact.id)
    assert (contact.first_name, contact.email, contact.lead_source) == ("Ann", "ann@initech.test", "referral")
    assert contact.primary_company_id == result.company.id and contact.owner_id == users["sales"].id
    assert sorted(t.name for t in result.contact.tags) == ["Hot", "VIP"]
    deal = db.session.get(Deal, result.deal.id)
    assert (deal.pipeline_id, deal.stage_id, deal.value) == (pipeline.id, first_stage.id, Decimal("5000"))
    assert deal.contact_id == contact.id and deal.company_id == result.company.id and deal.status == "open"
    lead = db.session.get(Lead, lead.id)
    assert lead.status == "converted" and lead.converted_at is not None
    assert (lead.converted_contact_id, lead.converted_company_id, lead.converted_deal_id) == (
        contact.id,
        result.company.id,
        deal.id,
    )
    assert actions(lead.id) == ["converted"]
    assert actions(contact.id) == ["created"] and actions(deal.id) == ["created"]


def test_convert_reuses_a_live_company_by_name_case_insensitively(users, org, other_org):
    factories.make_company(other_org, name="Initech")
    factories.make_company(org, name="initech", deleted_at=factories.datetime.now(factories.UTC))
    existing = factories.make_company(org, name="INITECH")
    lead = factories.make_lead(org, company_name=" Initech ")
    before = count(Company)
    result = service(users["admin"]).convert(lead.id, create_deal=False, deal_value=Decimal("1"))
    assert result.company.id == existing.id and not result.company_created and result.deal is None
    assert count(Company) == before
    assert db.session.get(Lead, lead.id).converted_deal_id is None


def test_convert_without_company_name_makes_only_a_contact(users, org):
    lead = factories.make_lead(org, company_name=None)
    result = service(users["admin"]).convert(lead.id, create_deal=False)
    assert result.company is None and result.contact.primary_company_id is None


def test_convert_deal_value_and_name_from_the_form(users, org):
    factories.make_pipeline(org, is_default=True)
    lead = factories.make_lead(org, company_name="Acme", estimated_value=Decimal("10"))
    result = service(users["admin"]).convert(lead.id, deal_name="Big one", deal_value=Decimal("42.50"))
    assert (result.deal.name, result.deal.value) == ("Big one", Decimal("42.50"))


def test_convert_twice_is_refused(users, org):
    lead = factories.make_lead(org)
    svc = service(users["admin"])
    svc.convert(lead.id, create_deal=False)
    contacts = count(Contact)
    with pytest.raises(Conflict, match="already converted"):
        svc.convert(lead.id, create_deal=False)
    assert count(Contact) == contacts
    with pytest.raises(Conflict):
        svc.set_status(lead.id, status="new")


def test_convert_with_a_deal_but_no_default_pipeline_changes_nothing(users, org):
    factories.make_pipeline(org, is_default=False)
    lead = factories.make_lead(org, company_name="Newco")
    before = (count(Contact), count(Company), count(Deal))
    with pytest.raises(ValidationError) as error:
        service(users["admin"]).convert(lead.id, create_deal=True)
    assert "create_deal" in error.value.field_errors
    assert (count(Contact), count(Company), count(Deal)) == before
    assert db.session.get(Lead, lead.id).status == "new"


def test_convert_refuses_a_negative_deal_value(users, org):
    factories.make_pipeline(org, is_default=True)
    lead = factories.make_lead(org)
    with pytest.raises(ValidationError) as error:
        service(users["admin"]).convert(lead.id, deal_value=Decimal("-5"))
    assert "deal_value" in error.value.field_errors


def test_another_orgs_lead_is_not_found(users, org, other_org):
    foreign = factories.make_lead(other_org)
    svc = service(users["admin"])
    for call in (
        lambda: svc.detail(foreign.id),
        lambda: svc.convert(foreign.id, create_deal=False),
        lambda: svc.set_status(foreign.id, status="contacted"),
        lambda: svc.update(foreign.id, score=1),
        lambda: svc.delete(foreign.id),
    ):
        with pytest.raises(NotFound):
            call()


def test_detail_links_to_what_the_lead_became(users, org, count_queries):
    lead = factories.make_lead(org, company_name="Acme")
    result = service(users["admin"]).convert(lead.id, create_deal=False)
    factories.make_activity(org, lead_id=lead.id)
    with count_queries() as q:
        detail = service(users["admin"]).detail(lead.id)
        _ = (
            detail.lead.converted_contact.full_name,
            detail.lead.converted_company.name,
            detail.lead.converted_deal,
            detail.lead.tags,
            detail.lead.owner,
            [entry.actor for entry in detail.history],
            [activity.owner for activity in detail.timeline],
        )
    # lead with its links, tags, the activity timeline, history; plus one statement naming the records
    # the history mentions (the converted contact), however many entries there are
    # (tests/test_history_readable.py)
    assert q.count == 5
    assert detail.lead.converted_contact.id == result.contact.id
    assert "converted" in [entry.action for entry in detail.history]
    assert detail.timeline == ActivityService(Actor.of(users["admin"])).timeline(links=Links(lead=lead.id))
    assert len(detail.timeline) == 1


def test_soft_delete_bulk_and_restore(users, org):
    leads = [factories.make_lead(org) for _ in range(3)]
    svc = service(users["admin"])
    ids = [lead.id for lead in leads]
    assert sorted(svc.delete_many(ids)) == sorted(ids)
    assert svc.list_page().total == 0
    svc.restore_many(ids)
    assert svc.list_page().total == 3


def test_export_rows(users, org):
    factories.make_lead(org, first_name="Ann", company_name="Globex", owner_id=users["sales"].id)
    rows = [LEAD.csv_values(row) for row in service(users["admin"]).export_rows()]
    assert rows[0][0] == "Ann" and rows[0][5] == "Globex" and rows[0][11] == users["sales"].email

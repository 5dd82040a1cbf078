"""BaseService: org scoping, CRUD, soft delete and restore, role checks, history, error mapping."""

from decimal import Decimal
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from crm_web.errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import Company, Contact, Deal, RecordHistory, contact_tags, deal_tags
from crm_web.services.base import Actor, BaseService
from tests import factories


class Companies(BaseService[Company]):
    model = Company
    entity_type = "company"
    SORT_FIELDS: ClassVar[dict[str, Any]] = {"name": Company.name}
    WRITABLE_FIELDS = frozenset({"name", "industry", "owner_id"})


class Contacts(BaseService[Contact]):
    model = Contact
    entity_type = "contact"
    SORT_FIELDS: ClassVar[dict[str, Any]] = {"name": (Contact.last_name, Contact.first_name)}

    def optimized_query(self):
        return self.scoped().options(
            joinedload(Contact.primary_company), joinedload(Contact.owner), selectinload(Contact.tags)
        )


class Deals(BaseService[Deal]):
    model = Deal
    entity_type = "deal"
    WRITABLE_FIELDS = frozenset({"name", "value", "probability"})


def history(entity_id):
    return list(
        db.session.scalars(
            select(RecordHistory).where(RecordHistory.entity_id == entity_id).order_by(RecordHistory.created_at)
        )
    )


def test_create_sets_org_and_owner_and_records_history(users):
    admin = users["admin"]
    company = Companies(Actor.of(admin)).create(name="Initech", industry="Software", org_id="ignored")
    assert company.org_id == admin.org_id and company.owner_id == admin.id
    assert [h.action for h in history(company.id)] == ["created"]


def test_update_records_changed_fields_only(users):
    service = Companies(Actor.of(users["admin"]))
    company = service.create(name="Initech", industry="Software")
    service.update(company.id, name="Initrode", industry="Software", version=99)
    entries = history(company.id)
    assert [h.action for h in entries] == ["created", "updated"]
    assert entries[-1].changes == {"name": ["Initech", "Initrode"]}
    assert entries[-1].actor_id == users["admin"].id


def test_soft_delete_and_restore(users):
    service = Companies(Actor.of(users["admin"]))
    company = service.create(name="Initech")
    service.delete(company.id)
    with pytest.raises(NotFound):
        service.get(company.id)
    trashed = db.session.scalars(Company.select_deleted()).one()
    assert trashed.deleted_by_id == users["admin"].id
    service.restore(company.id)
    assert service.get(company.id).deleted_at is None
    assert [h.action for h in history(company.id)] == ["created", "deleted", "restored"]


def test_restore_of_a_live_record_is_not_found(users):
    service = Companies(Actor.of(users["admin"]))
    company = service.create(name="Initech")
    with pytest.raises(NotFound):
        service.restore(company.id)


def test_bulk_delete_is_one_update_and_restores_exactly(users, count_queries, org, other_org):
    service = Companies(Actor.of(users["admin"]))
    mine = [factories.make_company(org) for _ in range(5)]
    theirs = factories.make_company(other_org)
    with count_queries() as q:
        deleted = service.delete_many([c.id for c in mine[:3]] + [theirs.id])
    updates = [s for s in q.statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    assert set(deleted) == {c.id for c in mine[:3]}
    assert {c.id for c in service.list_page().items} == {c.id for c in mine[3:]}
    assert set(service.restore_many(deleted)) == set(deleted)
    assert len(service.list_page().items) == 5


def test_sales_cannot_change_someone_elses_record(users, org):
    company = factories.make_company(org, owner_id=users["manager"].id)
    own = factories.make_company(org, owner_id=users["sales"].id)
    sales = Companies(Actor.of(users["sales"]))
    with pytest.raises(PermissionDenied):
        sales.update(company.id, name="Mine now")
    with pytest.raises(PermissionDenied):
        sales.delete(company.id)
    with pytest.raises(PermissionDenied):
        sales.delete_many([company.id, own.id])
    sales.update(own.id, name="Renamed")
    Companies(Actor.of(users["manager"])).update(own.id, name="Managers may")


def test_only_the_deleter_or_a_manager_restores(users, org):
    company = factories.make_company(org, owner_id=users["sales"].id)
    Companies(Actor.of(users["manager"])).delete(company.id)
    with pytest.raises(PermissionDenied):
        Companies(Actor.of(users["sales"])).restore(company.id)
    Companies(Actor.of(users["admin"])).restore(company.id)


def test_hard_delete_needs_admin(users, org):
    company = factories.make_company(org)
    with pytest.raises(PermissionDenied):
        Companies(Actor.of(users["manager"])).delete(company.id, hard=True)
    Companies(Actor.of(users["admin"])).delete(company.id, hard=True)
    assert db.session.scalars(Company.select_with_deleted().where(Company.id == company.id)).first() is None


def test_constraint_violation_becomes_a_field_error(users, org):
    deal = factories.make_deal(org)
    with pytest.raises(ValidationError) as error:
        Deals(Actor.of(users["admin"])).update(deal.id, value=Decimal("-5"))
    assert error.value.field_errors == {"value": "Value cannot be negative."}
    with pytest.raises(ValidationError) as error:
        Deals(Actor.of(users["admin"])).update(deal.id, probability=150)
    assert "probability" in error.value.field_errors


def test_concurrent_update_of_a_stale_copy_is_a_conflict(users, org, app):
    from crm_web.extensions import db as database

    company = factories.make_company(org, name="Original")
    # Another request changed the row meanwhile (bumping its version).
    database.session.execute(
        Company.__table__.update().where(Company.id == company.id).values(name="Theirs", version=Company.version + 1)
    )
    with pytest.raises(Conflict):
        Companies(Actor.of(users["admin"])).update(company.id, name="Mine")


def test_sort_whitelist_and_pagination(users, org):
    for name in ["b", "a", "c"]:
        factories.make_company(org, name=name)
    service = Companies(Actor.of(users["admin"]))
    assert [c.name for c in service.list_page(sort="name").items] == ["a", "b", "c"]
    assert [c.name for c in service.list_page(sort="-name").items] == ["c", "b", "a"]
    page = service.list_page(sort="name", page=2, per_page=2)
    assert ([c.name for c in page.items], page.total, page.pages, page.has_prev, page.has_next) == (
        ["c"],
        3,
        2,
        True,
        False,
    )
    assert service.list_page(sort="name", page=99, per_page=2).page == 2  # past the end: the last page
    with pytest.raises(BadRequest):
        service.list_page(sort="password_hash")


@pytest.mark.parametrize("rows", [10, 100])
def test_optimized_query_costs_the_same_for_10_and_100_rows(users, org, count_queries, rows):
    company = factories.make_company(org)
    tag = factories.make_tag(org)
    for _ in range(rows):
        contact = factories.make_contact(org, primary_company_id=company.id, owner_id=users["sales"].id)
        db.session.execute(contact_tags.insert().values(contact_id=contact.id, tag_id=tag.id))
    db.session.commit()
    db.session.expunge_all()
    service = Contacts(Actor.of(users["admin"]))
    with count_queries() as q:
        page = service.list_page(per_page=100)
        names = [(c.full_name, c.primary_company.name, c.owner.name, [t.name for t in c.tags]) for c in page.items]
    assert len(names) == rows
    assert q.count == 3, q  # count, rows with company and owner joined, tags


def test_other_org_ids_are_not_found_everywhere(users, other_org):
    theirs = factories.make_company(other_org)
    service = Companies(Actor.of(users["admin"]))
    for call in (
        lambda: service.get(theirs.id),
        lambda: service.update(theirs.id, name="x"),
        lambda: service.delete(theirs.id),
        lambda: service.restore(theirs.id),
    ):
        with pytest.raises(NotFound):
            call()


# --- every entity service: its optimized_query costs the same for 10 and 100 rows -------------


def _rows_for(kind, org, n):
    company = factories.make_company(org)
    contact = factories.make_contact(org, primary_company_id=company.id)
    pipeline = factories.make_pipeline(org, is_default=False)
    deal = factories.make_deal(org, pipeline=pipeline, company_id=company.id, contact_id=contact.id)
    tag = factories.make_tag(org)
    makers = {
        "contact": lambda: factories.make_contact(org, primary_company_id=company.id),
        "company": lambda: factories.make_company(org),
        "lead": lambda: factories.make_lead(org),
        "deal": lambda: factories.make_deal(org, pipeline=pipeline, company_id=company.id, contact_id=contact.id),
        "activity": lambda: factories.make_activity(org, contact_id=contact.id, company_id=company.id, deal_id=deal.id),
        "tag": lambda: factories.make_tag(org),
    }
    links = {"contact": contact_tags, "deal": deal_tags}
    for _ in range(n):
        row = makers[kind]()
        if kind in links:
            column = "contact_id" if kind == "contact" else "deal_id"
            db.session.execute(links[kind].insert().values({column: row.id, "tag_id": tag.id}))
    db.session.commit()
    db.session.expunge_all()


def _services():
    from crm_web.services.activities import ActivityService
    from crm_web.services.companies import CompanyService
    from crm_web.services.contacts import ContactService
    from crm_web.services.deals import DealService
    from crm_web.services.leads import LeadService
    from crm_web.services.tags import TagService

    return {
        "contact": ContactService,
        "company": CompanyService,
        "lead": LeadService,
        "deal": DealService,
        "activity": ActivityService,
        "tag": TagService,
    }


@pytest.mark.parametrize("kind", ["contact", "company", "lead", "deal", "activity", "tag"])
def test_each_services_optimized_query_is_constant_in_rows(users, org, count_queries, kind):
    service = _services()[kind](Actor.of(users["admin"]))
    counts = {}
    for rows in (10, 100):
        _rows_for(kind, org, rows if rows == 10 else 90)
        with count_queries() as q:
            items = db.session.scalars(service.optimized_query().limit(200)).unique().all()
        assert len(items) >= rows
        counts[rows] = q.count
        db.session.expunge_all()
    assert counts[10] == counts[100], counts

"""TrashService and the history reader: the org's trash in one query, restore (with deal re-homing),
permanent delete without integrity errors, retention, roles, and a history row for every change."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import (
    Activity,
    Company,
    Contact,
    ContactCompany,
    Deal,
    Lead,
    Pipeline,
    PipelineStage,
    RecordHistory,
    contact_tags,
    deal_tags,
    utcnow,
)
from crm_web.services.base import Actor, BaseService
from crm_web.services.history import history_for
from crm_web.services.trash import TrashRef, TrashService, link_is_trashed, parse_ref, purge_expired
from tests import factories


class Companies(BaseService[Company]):
    model = Company
    entity_type = "company"


class Contacts(BaseService[Contact]):
    model = Contact
    entity_type = "contact"
    WRITABLE_FIELDS = frozenset({"first_name", "last_name", "email"})


class Deals(BaseService[Deal]):
    model = Deal
    entity_type = "deal"


class Leads(BaseService[Lead]):
    model = Lead
    entity_type = "lead"


class Activities(BaseService[Activity]):
    model = Activity
    entity_type = "activity"


def actor(users, role="admin"):
    return Actor.of(users[role])


def trash(users, role="admin"):
    return TrashService(actor(users, role))


def ref(obj, entity_type):
    return TrashRef(entity_type, obj.id)


def is_deleted(model, entity_id):
    return (
        db.session.scalar(select(model.deleted_at).where(model.id == entity_id).execution_options(include_deleted=True))
        is not None
    )


def exists(model, entity_id):
    return (
        db.session.scalar(
            select(func.count()).select_from(model).where(model.id == entity_id).execution_options(include_deleted=True)
        )
        == 1
    )


def actions(entity_id):
    return [
        h.action
        for h in db.session.scalars(
            select(RecordHistory).where(RecordHistory.entity_id == entity_id).order_by(RecordHistory.created_at)
        )
    ]


@pytest.fixture
def trashed(org, users):
    """One deleted record of each type (deleted by the sales user), and one live contact."""
    sales = actor(users, "sales")
    company = factories.make_company(org, name="Initech")
    contact = factories.make_contact(org, first_name="Peter", last_name="Gibbons")
    lead = factories.make_lead(org, first_name="Milton", last_name="Waddams")
    deal = factories.make_deal(org, name="Stapler deal")
    activity = factories.make_activity(org, subject="Call Bill")
    factories.make_contact(org, first_name="Still", last_name="Here")
    Companies(sales).delete(company.id)
    Contacts(sales).delete(contact.id)
    Leads(sales).delete(lead.id)
    Deals(sales).delete(deal.id)
    Activities(sales).delete(activity.id)
    return {"company": company, "contact": contact, "lead": lead, "deal": deal, "activity": activity}


# --- listing -------------------------------------------------------------------------------


def test_list_shows_every_type_with_who_deleted_it_newest_first(trashed, users):
    page = trash(users).list_trash()
    assert page.total == 5
    assert [i.entity_type for i in page.items] == ["activity", "deal", "lead", "contact", "company"]
    labels = {i.entity_type: i.label for i in page.items}
    assert labels == {
        "company": "Initech",
        "contact": "Peter Gibbons",
        "lead": "Milton Waddams",
        "deal": "Stapler deal",
        "activity": "Call Bill",
    }
    assert {i.deleted_by_name for i in page.items} == {users["sales"].name}


def test_list_filters_by_type_and_searches_case_insensitively(trashed, users):
    service = trash(users, "manager")
    assert [i.label for i in service.list_trash(entity_type="deal").items] == ["Stapler deal"]
    assert [i.label for i in service.list_trash(q="GIBB").items] == ["Peter Gibbons"]
    assert [i.label for i in service.list_trash(q="peter gib").items] == ["Peter Gibbons"]
    assert service.list_trash(q="%").total == 0  # LIKE wildcards are escaped
    assert service.list_trash(entity_type="contact", q="stapler").total == 0


def test_list_paginates_with_a_clamped_page(trashed, users):
    page = trash(users).list_trash(page=2, per_page=2)
    assert (page.total, page.page, page.pages, len(page.items)) == (5, 2, 3, 2)
    assert trash(users).list_trash(page=99, per_page=2).page == 3


def test_list_costs_two_statements_for_one_or_many_rows(org, users, count_queries):
    contact = factories.make_contact(org)
    Contacts(actor(users)).delete(contact.id)
    with count_queries() as one:
        assert trash(users).list_trash().total == 1
    for _ in range(8):
        Deals(actor(users)).delete(factories.make_deal(org).id)
    with count_queries() as many:
        assert trash(users).list_trash().total == 9
    assert one.count == many.count == 2, many


def test_sales_cannot_open_the_trash(trashed, users):
    with pytest.raises(PermissionDenied):
        trash(users, "sales").list_trash()
    with pytest.raises(PermissionDenied):
        trash(users, "sales").get_entry("deal", trashed["deal"].id)


def test_unknown_type_is_a_validation_error(users):
    with pytest.raises(ValidationError):
        trash(users).list_trash(entity_type="users")
    with pytest.raises(NotFound):
        trash(users).get_entry("users", uuid.uuid4())


def test_another_orgs_trash_is_invisible(trashed, other_org, users):
    outsider = factories.make_user(other_org, role="admin")
    service = TrashService(Actor.of(outsider))
    assert service.list_trash().total == 0
    with pytest.raises(NotFound):
        service.get_entry("deal", trashed["deal"].id)
    with pytest.raises(NotFound):
        service.restore([ref(trashed["deal"], "deal")])
    with pytest.raises(NotFound):
        service.purge([ref(trashed["deal"], "deal")])
    assert is_deleted(Deal, trashed["deal"].id) and exists(Deal, trashed["deal"].id)


def test_live_records_and_wrong_types_are_not_in_the_trash(org, users):
    live = factories.make_contact(org)
    with pytest.raises(NotFound):
        trash(users).restore([TrashRef("contact", live.id)])
    with pytest.raises(NotFound):
        trash(users).purge([TrashRef("deal", live.id)])  # right id, wrong type
    assert exists(Contact, live.id)


def test_parse_ref_rejects_junk():
    good = uuid.uuid4()
    assert parse_ref(f"deal:{good}") == TrashRef("deal", good)
    for junk in ("", "deal", "deal:", "deal:123", "user:" + str(good), str(good), "deal :x"):
        assert parse_ref(junk) is None


def test_entry_has_the_record_history(trashed, users):
    entry = trash(users, "manager").get_entry("contact", trashed["contact"].id)
    assert entry.item.label == "Peter Gibbons"
    assert [h.action for h in entry.history] == ["deleted"]
    assert entry.history[0].actor.name == users["sales"].name


# --- restore -------------------------------------------------------------------------------


def test_admin_restores_many_of_several_types_in_one_go(trashed, users):
    refs = [ref(trashed[t], t) for t in ("contact", "company", "activity")]
    result = trash(users).restore(refs)
    assert {i.entity_type for i in result.restored} == {"contact", "company", "activity"}
    assert result.relocated == [] and result.missing == 0
    assert result.message == "Restored 3 records."
    for t, model in (("contact", Contact), ("company", Company), ("activity", Activity)):
        assert not is_deleted(model, trashed[t].id)
        assert actions(trashed[t].id) == ["deleted", "restored"]
    assert is_deleted(Deal, trashed["deal"].id)
    assert trash(users).list_trash().total == 2


def test_restore_of_one_names_it_and_reports_missing_ones(trashed, users):
    result = trash(users).restore([ref(trashed["lead"], "lead"), TrashRef("lead", uuid.uuid4())])
    assert result.missing == 1
    assert result.message.startswith("Restored Milton Waddams.")


def test_managers_cannot_restore_from_the_trash_but_may_undo(trashed, users, org):
    with pytest.raises(PermissionDenied):
        trash(users, "manager").restore([ref(trashed["deal"], "deal")])
    # Undo through the entity's own restore stays open to whoever deleted it.
    Deals(actor(users, "sales")).restore(trashed["deal"].id)
    assert not is_deleted(Deal, trashed["deal"].id)


def test_empty_selection_is_a_validation_error(users):
    with pytest.raises(ValidationError):
        trash(users).restore([])


def test_restoring_a_deal_whose_stage_was_deleted_moves_it_to_the_default_pipelines_first_stage(org, users):
    default = factories.make_pipeline(org, name="Sales", is_default=True)
    other = factories.make_pipeline(org, name="Renewals", is_default=False)
    doomed_stage = factories.stages_of(other)[1]
    deal = factories.make_deal(org, stage=doomed_stage, name="Orphan")
    kept_stage = factories.stages_of(other)[2]
    kept = factories.make_deal(org, stage=kept_stage, name="Kept")
    Deals(actor(users)).delete_many([deal.id, kept.id])
    db.session.delete(db.session.get(PipelineStage, doomed_stage.id))
    db.session.commit()

    result = trash(users).restore([ref(deal, "deal"), ref(kept, "deal")])
    assert [(i.label, where) for i, where in result.relocated] == [("Orphan", "Sales › Lead in")]
    assert "Orphan was moved to Sales › Lead in because its stage no longer exists." in result.message
    first = factories.stages_of(default)[0]
    row = db.session.execute(select(Deal.pipeline_id, Deal.stage_id).where(Deal.id == deal.id)).one()
    assert tuple(row) == (default.id, first.id)
    kept_row = db.session.execute(select(Deal.stage_id).where(Deal.id == kept.id)).one()
    assert kept_row[0] == kept_stage.id
    entry = history_for(actor(users), "deal", deal.id)[0]
    assert entry.action == "restored" and entry.changes["stage"] == ["(deleted stage)", "Sales › Lead in"]


def test_restoring_a_deal_whose_pipeline_was_deleted_also_rehomes_it(org, users):
    default = factories.make_pipeline(org, name="Main", is_default=True)
    gone = factories.make_pipeline(org, name="Gone", is_default=False)
    deal = factories.make_deal(org, pipeline=gone, name="Lost soul")
    Deals(actor(users)).delete(deal.id)
    db.session.delete(db.session.get(Pipeline, gone.id))
    db.session.commit()
    assert db.session.execute(
        select(Deal.pipeline_id, Deal.stage_id).where(Deal.id == deal.id).execution_options(include_deleted=True)
    ).one() == (None, None)
    result = trash(users).restore([ref(deal, "deal")])
    assert result.relocated[0][1] == "Main › Lead in"
    assert db.session.scalar(select(Deal.stage_id).where(Deal.id == deal.id)) == factories.stages_of(default)[0].id


# --- deleted companies keep their links ------------------------------------------------------


def test_deleting_a_company_keeps_its_contacts_and_deals_linked(org, users):
    company = factories.make_company(org, name="Umbrella")
    contact = factories.make_contact(org, primary_company_id=company.id)
    deal = factories.make_deal(org, company_id=company.id)
    Companies(actor(users)).delete(company.id)
    db.session.expunge_all()

    loaded = db.session.scalars(select(Deal).options(joinedload(Deal.company)).where(Deal.id == deal.id)).one()
    assert loaded.company_id == company.id and loaded.company is None
    assert link_is_trashed(loaded, "company")
    person = db.session.scalars(
        select(Contact).options(joinedload(Contact.primary_company)).where(Contact.id == contact.id)
    ).one()
    assert link_is_trashed(person, "primary_company")

    trash(users).restore([ref(company, "company")])
    db.session.expunge_all()
    loaded = db.session.scalars(select(Deal).options(joinedload(Deal.company)).where(Deal.id == deal.id)).one()
    assert loaded.company.name == "Umbrella" and not link_is_trashed(loaded, "company")


# --- permanent delete ----------------------------------------------------------------------


def test_purge_unlinks_related_rows_and_removes_tag_links(org, users):
    tag = factories.make_tag(org)
    company = factories.make_company(org)
    contact = factories.make_contact(org, primary_company_id=company.id)
    db.session.execute(contact_tags.insert().values(contact_id=contact.id, tag_id=tag.id))
    db.session.add(ContactCompany(org_id=org.id, contact_id=contact.id, company_id=company.id, role="Board"))
    deal = factories.make_deal(org, contact_id=contact.id, company_id=company.id)
    db.session.execute(deal_tags.insert().values(deal_id=deal.id, tag_id=tag.id))
    activity = factories.make_activity(org, contact_id=contact.id, deal_id=deal.id, company_id=company.id)
    lead = factories.make_lead(org, converted_contact_id=contact.id, converted_deal_id=deal.id)
    db.session.commit()
    Contacts(actor(users)).delete(contact.id)
    Deals(actor(users)).delete(deal.id)
    Companies(actor(users)).delete(company.id)

    result = trash(users).purge([ref(contact, "contact"), ref(deal, "deal"), ref(company, "company")])
    assert result.counts == {"contact": 1, "company": 1, "lead": 0, "deal": 1, "activity": 0}
    assert not exists(Contact, contact.id) and not exists(Deal, deal.id) and not exists(Company, company.id)
    act = db.session.execute(
        select(Activity.contact_id, Activity.deal_id, Activity.company_id).where(Activity.id == activity.id)
    ).one()
    assert tuple(act) == (None, None, None)
    converted = db.session.execute(
        select(Lead.converted_contact_id, Lead.converted_deal_id).where(Lead.id == lead.id)
    ).one()
    assert tuple(converted) == (None, None)
    assert db.session.scalar(select(func.count()).select_from(contact_tags)) == 0
    assert db.session.scalar(select(func.count()).select_from(deal_tags)) == 0
    assert db.session.scalar(select(func.count()).select_from(ContactCompany)) == 0
    assert actions(contact.id) == ["deleted", "purged"]
    purged = history_for(actor(users), "contact", contact.id)[0]
    assert purged.entity_label == contact.full_name and purged.actor_id == users["admin"].id


def test_only_admins_purge(trashed, users):
    for role in ("manager", "sales"):
        with pytest.raises(PermissionDenied):
            trash(users, role).purge([ref(trashed["deal"], "deal")])
        with pytest.raises(PermissionDenied):
            trash(users, role).preview_purge([ref(trashed["deal"], "deal")])
        with pytest.raises(PermissionDenied):
            trash(users, role).purge_older_than(days=0)
    assert exists(Deal, trashed["deal"].id)


def test_preview_names_what_will_go(trashed, users):
    items = trash(users).preview_purge([ref(trashed["deal"], "deal"), ref(trashed["lead"], "lead")])
    assert sorted(i.label for i in items) == ["Milton Waddams", "Stapler deal"]
    assert exists(Deal, trashed["deal"].id)


# --- retention -----------------------------------------------------------------------------


def age(model, entity_id, days):
    db.session.execute(
        update(model)
        .where(model.id == entity_id)
        .values(deleted_at=utcnow() - timedelta(days=days))
        .execution_options(include_deleted=True)
    )
    db.session.commit()


def test_retention_dry_run_lists_and_real_run_purges_only_old_trash(trashed, users):
    age(Deal, trashed["deal"].id, 40)
    age(Contact, trashed["contact"].id, 31)
    service = trash(users)
    dry = service.purge_older_than(days=30, dry_run=True)
    assert dry.counts == {"contact": 1, "company": 0, "lead": 0, "deal": 1, "activity": 0}
    assert [i.label for i in dry.items] == ["Stapler deal", "Peter Gibbons"]  # oldest first
    assert exists(Deal, trashed["deal"].id)

    real = service.purge_older_than(days=30)
    assert real.total == 2 and not exists(Deal, trashed["deal"].id) and not exists(Contact, trashed["contact"].id)
    assert service.list_trash().total == 3
    with pytest.raises(ValidationError):
        service.purge_older_than(days=-1)


def test_retention_for_all_orgs_uses_a_system_actor(trashed, users, other_org):
    outsider = factories.make_contact(other_org)
    Contacts(Actor(org_id=other_org.id, user_id=None, role=users["admin"].role_enum)).delete(outsider.id)
    age(Contact, outsider.id, 100)
    results = purge_expired(days=30)
    assert results[other_org.slug].total == 1 and not exists(Contact, outsider.id)
    assert all(r.total == 0 for slug, r in results.items() if slug != other_org.slug)
    entry = db.session.scalars(
        select(RecordHistory).where(RecordHistory.entity_id == outsider.id, RecordHistory.action == "purged")
    ).one()
    assert entry.actor_id is None


# --- history -------------------------------------------------------------------------------


def test_history_for_every_kind_of_change(org, users):
    service = Contacts(actor(users))
    contact = service.create(first_name="Samir", last_name="N")
    service.update(contact.id, last_name="Nagheenanajar", email="samir@initech.test")
    service.delete(contact.id)
    service.restore(contact.id)
    other = factories.make_contact(org)
    service.delete_many([contact.id, other.id])
    service.restore_many([contact.id, other.id])
    service.delete(contact.id)
    trash(users).purge([ref(contact, "contact")])

    entries = history_for(actor(users), "contact", contact.id)
    assert [e.action for e in reversed(entries)] == [
        "created",
        "updated",
        "deleted",
        "restored",
        "deleted",
        "restored",
        "deleted",
        "purged",
    ]
    updated = entries[-2]
    assert updated.changes == {"last_name": ["N", "Nagheenanajar"], "email": [None, "samir@initech.test"]}
    assert entries[3].changes.get("bulk") is True and entries[2].changes.get("bulk") is True
    assert all(e.actor.name == users["admin"].name for e in entries)
    assert [e.action for e in history_for(actor(users), "contact", other.id)] == ["restored", "deleted"]


def test_history_is_scoped_to_the_org_and_limited(org, other_org, users):
    contact = Contacts(actor(users)).create(first_name="A")
    outsider = Actor.of(factories.make_user(other_org, role="admin"))
    assert history_for(outsider, "contact", contact.id) == []
    assert history_for(actor(users), "company", contact.id) == []
    for n in range(3):
        Contacts(actor(users)).update(contact.id, last_name=f"L{n}")
    assert len(history_for(actor(users), "contact", contact.id, limit=2)) == 2


def test_history_read_is_one_statement(org, users, count_queries):
    contact = Contacts(actor(users)).create(first_name="A")
    Contacts(actor(users, "manager")).update(contact.id, last_name="B")
    with count_queries() as q:
        entries = history_for(actor(users), "contact", contact.id)
        names = [e.actor.name for e in entries]
    assert q.count == 1 and names == [users["manager"].name, users["admin"].name]


def test_a_write_adds_a_constant_number_of_statements(org, users, count_queries):
    """History is written in the same transaction: one INSERT more per write, whatever the size."""
    service = Contacts(actor(users))
    contact = factories.make_contact(org)
    with count_queries() as single:
        service.update(contact.id, last_name="Changed")
    assert single.count == 3, single  # SELECT, UPDATE, INSERT history
    few = [factories.make_contact(org).id for _ in range(2)]
    many = [factories.make_contact(org).id for _ in range(20)]
    with count_queries() as small:
        service.delete_many(few)
    with count_queries() as large:
        service.delete_many(many)
    assert small.count == large.count == 3, large  # SELECT, UPDATE, INSERT history
    with count_queries() as restore_small:
        trash(users).restore([TrashRef("contact", i) for i in few])
    with count_queries() as restore_large:
        trash(users).restore([TrashRef("contact", i) for i in many])
    assert restore_small.count == restore_large.count == 3, restore_large  # resolve, UPDATE, INSERT history


def test_one_record_changes_are_not_marked_bulk(org, users):
    a, b, c = (factories.make_contact(org) for _ in range(3))
    service = Contacts(actor(users))
    service.delete_many([a.id])
    service.delete_many([b.id, c.id])
    trash(users).restore([TrashRef("contact", a.id)])
    trash(users).restore([TrashRef("contact", b.id), TrashRef("contact", c.id)])
    first = [e.changes for e in history_for(actor(users), "contact", a.id)]
    assert first == [{"from_trash": True}, {}]
    second = [e.changes for e in history_for(actor(users), "contact", b.id)]
    assert second == [{"from_trash": True, "bulk": True}, {"bulk": True}]

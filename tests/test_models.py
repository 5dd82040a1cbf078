"""Database constraints, soft-delete visibility and tenant scoping, on both engines."""

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_web.errors import NotFound
from crm_web.extensions import db
from crm_web.models import Company, Contact, Deal, Pipeline, PipelineStage, Role, utcnow
from crm_web.services.base import Actor, BaseService
from tests import factories


def assert_rejected(obj):
    db.session.add(obj)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def stage(org, pipeline, name, **flags):
    return PipelineStage(org_id=org.id, pipeline_id=pipeline.id, name=name, **flags)


class TestConstraints:
    def test_one_default_pipeline_per_org(self, org, other_org):
        factories.make_pipeline(org, is_default=True)
        factories.make_pipeline(org, is_default=False)  # any number of non-default pipelines
        factories.make_pipeline(other_org, is_default=True)  # another org has its own default
        assert_rejected(Pipeline(org_id=org.id, name="Second default", is_default=True))

    def test_one_won_and_one_lost_stage_per_pipeline(self, org):
        pipeline = factories.make_pipeline(org, stages=[("Open", 10, None), ("Won", 100, "won"), ("Lost", 0, "lost")])
        assert_rejected(stage(org, pipeline, "Won again", is_won=True, probability=100))
        assert_rejected(stage(org, pipeline, "Lost again", is_lost=True))
        other = factories.make_pipeline(org, is_default=False, stages=[("Open", 10, None)])
        db.session.add(stage(org, other, "Won", is_won=True, probability=100))
        db.session.add(stage(org, other, "Lost", is_lost=True))
        db.session.commit()  # each pipeline may have its own won and lost stage

    def test_stage_is_never_both_won_and_lost(self, org):
        pipeline = factories.make_pipeline(org, stages=[("Open", 10, None)])
        assert_rejected(stage(org, pipeline, "Both", is_won=True, is_lost=True))

    def test_stage_probability_range(self, org):
        pipeline = factories.make_pipeline(org, stages=[("Open", 10, None)])
        assert_rejected(stage(org, pipeline, "Too high", probability=101))

    def test_deal_value_non_negative(self, org):
        pipeline = factories.make_pipeline(org)
        first = factories.stages_of(pipeline)[0]
        assert_rejected(
            Deal(org_id=org.id, name="Negative", value=Decimal("-1"), pipeline_id=pipeline.id, stage_id=first.id)
        )
        factories.make_deal(org, pipeline=pipeline, value=Decimal("0"))

    @pytest.mark.parametrize("probability", [-1, 101])
    def test_deal_probability_range(self, org, probability):
        pipeline = factories.make_pipeline(org)
        first = factories.stages_of(pipeline)[0]
        assert_rejected(
            Deal(
                org_id=org.id,
                name="Bad",
                value=Decimal("1"),
                probability=probability,
                pipeline_id=pipeline.id,
                stage_id=first.id,
            )
        )

    @pytest.mark.parametrize("probability", [0, 100, None])
    def test_deal_probability_valid_values(self, org, probability):
        pipeline = factories.make_pipeline(org)
        deal = factories.make_deal(org, pipeline=pipeline, probability=probability)
        assert deal.probability == probability


class TestSoftDelete:
    def test_deleted_rows_are_invisible_to_ordinary_queries(self, org):
        kept = factories.make_contact(org, first_name="Kept")
        gone = factories.make_contact(org, first_name="Gone")
        gone.deleted_at = utcnow()
        db.session.commit()
        db.session.expunge_all()

        assert {c.first_name for c in db.session.scalars(select(Contact))} == {"Kept"}
        assert set(db.session.scalars(select(Contact.first_name))) == {"Kept"}  # column selects too
        assert db.session.scalars(select(Contact).where(Contact.id == gone.id)).first() is None
        assert {c.id for c in db.session.scalars(Contact.select_with_deleted())} == {kept.id, gone.id}
        assert [c.id for c in db.session.scalars(Contact.select_deleted())] == [gone.id]

    def test_eager_loaded_relations_hide_deleted_rows(self, org):
        company = factories.make_company(org)
        contact = factories.make_contact(org, primary_company_id=company.id)
        company.deleted_at = utcnow()
        db.session.commit()
        db.session.expunge_all()
        from sqlalchemy.orm import selectinload

        loaded = db.session.scalars(
            select(Contact).options(selectinload(Contact.primary_company)).where(Contact.id == contact.id)
        ).one()
        assert loaded.primary_company is None  # the link stays in the row, the company is in the trash
        assert loaded.primary_company_id == company.id


class CompanyService(BaseService[Company]):
    model = Company
    entity_type = "company"


class TestTenantScoping:
    def test_a_user_of_one_org_cannot_read_another_orgs_records(self, org, other_org):
        mine = factories.make_company(org, name="Mine")
        theirs = factories.make_company(other_org, name="Theirs")
        admin = factories.make_user(org, role="admin")
        service = CompanyService(Actor.of(admin))

        assert [c.name for c in service.list_page().items] == ["Mine"]
        assert service.get(mine.id).name == "Mine"
        with pytest.raises(NotFound):
            service.get(theirs.id)
        with pytest.raises(NotFound):
            service.update(theirs.id, name="Hacked")
        with pytest.raises(NotFound):
            service.delete(theirs.id)
        assert service.delete_many([theirs.id]) == []
        db.session.expire_all()
        assert db.session.get(Company, theirs.id).deleted_at is None


def test_roles_are_ordered_sales_manager_admin():
    """Each role can do everything the roles below it can (Role.at_least, read by permissions.can)."""
    order = [Role.SALES, Role.MANAGER, Role.ADMIN]
    assert [role.rank for role in order] == [0, 1, 2]
    for lower, role in enumerate(order):
        assert [role.at_least(other) for other in order] == [n <= lower for n in range(3)]
    assert Role("manager").at_least(Role.SALES) and not Role("sales").at_least(Role.MANAGER)

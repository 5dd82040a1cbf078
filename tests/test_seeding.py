"""The volume seeder (services/seeding.py): a seed gives the same records, seeding again adds to them,
custom field values are written with the rows, and on PostgreSQL a large load's indexes are built
after it exactly as they were."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from crm_web.extensions import db
from crm_web.models import Activity, Company, Contact, Deal, Lead
from crm_web.services import seeding
from tests import factories

VOLUME = {"companies": 6, "contacts": 25, "leads": 5, "deals": 12, "activities": 40}


def seeded(org, seed=5, **extra):
    factories.make_user(org, role="admin")
    return seeding.Seeder(org, seed=seed).run(**VOLUME, **extra)


def records(org):
    """What a seed decides, without the ids (random) and the times (relative to the run's start)."""
    contacts = db.session.execute(
        select(Contact.first_name, Contact.last_name, Contact.email, Contact.status, Contact.city)
        .where(Contact.org_id == org.id)
        .order_by(Contact.email)
    ).all()
    companies = db.session.scalars(select(Company.name).where(Company.org_id == org.id).order_by(Company.name)).all()
    deals = db.session.execute(
        select(Deal.name, Deal.value, Deal.status).where(Deal.org_id == org.id).order_by(Deal.name)
    ).all()
    leads = db.session.scalars(select(Lead.email).where(Lead.org_id == org.id).order_by(Lead.email)).all()
    activities = db.session.execute(
        select(Activity.subject, Activity.status, func.count())
        .where(Activity.org_id == org.id)
        .group_by(Activity.subject, Activity.status)
        .order_by(Activity.subject, Activity.status)
    ).all()
    return contacts, companies, deals, leads, activities


def test_a_seed_gives_the_same_records(app):
    first, second, other = factories.make_org("one"), factories.make_org("two"), factories.make_org("three")
    seeded(first)
    seeded(second)
    seeded(other, seed=6)
    assert records(first) == records(second)
    assert records(first) != records(other)
    assert len(records(first)[0]) == VOLUME["contacts"]


def test_seeding_again_adds_records(app):
    org = factories.make_org("again")
    seeded(org)
    seeding.Seeder(org, seed=5).run(**VOLUME)  # the same seed: new ids, no primary key repeated
    total = db.session.scalar(select(func.count()).select_from(Contact).where(Contact.org_id == org.id))
    assert total == 2 * VOLUME["contacts"]


def test_custom_values_are_written_with_the_rows(app):
    org = factories.make_org("custom")

    def initials(rng, row):
        return {"initial": row["first_name"][0], "lucky": rng.randint(1, 6)}

    seeded(org, custom={"contacts": initials})
    rows = db.session.execute(select(Contact.first_name, Contact.custom).where(Contact.org_id == org.id)).all()
    assert len(rows) == VOLUME["contacts"]
    assert all(custom["initial"] == first[0] and 1 <= custom["lucky"] <= 6 for first, custom in rows)
    assert db.session.scalar(select(func.count()).select_from(Deal).where(Deal.custom.is_not(None))) == 0


def _index_definitions():
    return db.session.execute(
        text(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename IN ('companies', 'contacts', 'contact_companies', 'contact_tags', 'leads', 'deals', "
            "'activities') ORDER BY 1, 2"
        )
    ).all()


def _foreign_keys():
    return db.session.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = CAST(current_schema() AS regnamespace) ORDER BY 1, 2"
        )
    ).all()


@pytest.mark.postgres_only
def test_a_large_load_builds_the_indexes_after_it_as_they_were(app, monkeypatch, count_queries):
    monkeypatch.setattr(seeding, "REBUILD_AT", 10)
    org = factories.make_org("large")
    before, keys_before = _index_definitions(), _foreign_keys()
    with count_queries() as q:
        seeded(org)
    # The foreign keys too, added again (which checks every row) as they were.
    assert any(
        statement.startswith('ALTER TABLE "activities" DROP CONSTRAINT "fk_activities_contact_id_contacts"')
        for statement in q.statements
    )
    assert any(
        statement.startswith('ALTER TABLE "activities" ADD CONSTRAINT "fk_activities_contact_id_contacts" FOREIGN KEY')
        for statement in q.statements
    )
    assert _foreign_keys() == keys_before
    assert any(statement.startswith('DROP INDEX "ix_contacts_org_last_first"') for statement in q.statements)
    assert any(statement.startswith("CREATE INDEX contact_name_trgm_idx") for statement in q.statements)
    assert not any('DROP INDEX "pk_' in statement for statement in q.statements)  # the keys' checks stay
    assert _index_definitions() == before
    assert len(records(org)[0]) == VOLUME["contacts"]
    # Not for a table that already holds more rows than the load writes: its indexes stay.
    with count_queries() as q:
        seeding.Seeder(org, seed=5).run(**{**VOLUME, "contacts": 20})
    assert not any(statement.startswith('DROP INDEX "ix_contacts') for statement in q.statements)
    assert not any('ALTER TABLE "contacts" DROP CONSTRAINT' in statement for statement in q.statements)


@pytest.mark.postgres_only
def test_a_large_load_that_breaks_a_foreign_key_fails_and_leaves_the_keys(app, monkeypatch, count_queries):
    """The keys are checked when added again: a row naming a missing record fails the load, whose
    rollback brings back the indexes and keys as they were."""
    monkeypatch.setattr(seeding, "REBUILD_AT", 10)
    org = factories.make_org("broken")
    factories.make_user(org, role="admin")
    before, keys_before = _index_definitions(), _foreign_keys()
    real_insert = seeding.insert_rows

    def insert_with_a_stray_company(session, table, rows):
        if table.name == "deals":
            rows = [{**rows[0], "company_id": uuid.uuid4()}, *rows[1:]]
        real_insert(session, table, rows)

    monkeypatch.setattr(seeding, "insert_rows", insert_with_a_stray_company)
    # More deals than the other tests left in the table: its keys are dropped for the load.
    with count_queries() as q, pytest.raises(IntegrityError, match="fk_deals_company_id_companies"):
        seeding.Seeder(org, seed=5).run(**{**VOLUME, "deals": 500})
    db.session.rollback()
    assert any('ALTER TABLE "deals" DROP CONSTRAINT "fk_deals_company_id_companies"' in s for s in q.statements)
    assert _index_definitions() == before
    assert _foreign_keys() == keys_before
    assert db.session.scalar(select(func.count()).select_from(Deal).where(Deal.org_id == org.id)) == 0

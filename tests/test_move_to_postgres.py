"""`flask crm move-to-postgres` (crm_web/moving.py): an organisation seeded on SQLite arrives whole
on PostgreSQL, the tallies and search vocabulary rebuilt there, the moved users can sign in and see
their data, and a second run copies nothing twice.

Both databases commit for real, so this builds its own apps instead of the suite's rolled-back `app`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text

from crm_web.extensions import db
from crm_web.models import Contact, DealTally, Organization, User
from crm_web.models.base import Base
from crm_web.models.tag import contact_tags
from crm_web.moving import NOT_COPIED
from tests import factories
from tests.conftest import CSRFClient, build_app, postgres_database

COUNTS = {"companies": 15, "contacts": 60, "leads": 10, "deals": 30, "activities": 40}


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path_factory.mktemp('move') / 'crm.sqlite3'}"
    application = build_app(url)
    with application.app_context():
        for slug in ("acme", "globex"):
            org = factories.make_org(slug)
            org.slug = slug
            factories.make_user(org, role="admin", email=f"boss@{slug}.example")
            factories.make_pipeline(org)
        runner = application.test_cli_runner()
        for slug in ("acme", "globex"):
            args = ["crm", "seed", "--org", slug] + [f"--{name}={count}" for name, count in COUNTS.items()]
            seeded = runner.invoke(args=args)
            assert seeded.exit_code == 0, seeded.output
        acme = db.session.scalar(select(Organization).where(Organization.slug == "acme"))
        tag = factories.make_tag(acme, name="Moved")
        contact = db.session.scalar(select(Contact).where(Contact.org_id == acme.id).limit(1))
        contact.first_name, contact.last_name = "Ozymandias", "Kingsley"
        db.session.execute(contact_tags.insert().values(contact_id=contact.id, tag_id=tag.id))
        db.session.commit()
        db.session.remove()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def postgres_app() -> Iterator[Flask]:
    with postgres_database("crm_move") as url:
        application = build_app(url)
        yield application
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def _counts(url: str, org_slug: str) -> dict[str, int]:
    engine = create_engine(url)
    counts = {}
    with engine.connect() as connection:
        org_id = connection.scalar(select(Organization.id).where(Organization.slug == org_slug))
        for table in Base.metadata.sorted_tables:
            if "org_id" in table.c and table.name not in NOT_COPIED:
                counts[table.name] = connection.execute(
                    select(func.count()).select_from(table).where(table.c.org_id == org_id)
                ).scalar_one()
        counts["contact_tags"] = connection.execute(
            select(func.count()).select_from(contact_tags.join(Contact)).where(Contact.org_id == org_id)
        ).scalar_one()
        counts["deal_value"] = connection.execute(
            select(func.coalesce(func.sum(DealTally.value), 0)).where(DealTally.org_id == org_id)
        ).scalar_one()
        counts["deal_count"] = connection.execute(
            select(func.coalesce(func.sum(DealTally.deals), 0)).where(DealTally.org_id == org_id)
        ).scalar_one()
    engine.dispose()
    return counts


def test_an_organisation_moves_from_sqlite_to_postgresql(sqlite_app, postgres_app):
    source, target = sqlite_app.config["SQLALCHEMY_DATABASE_URI"], postgres_app.config["SQLALCHEMY_DATABASE_URI"]
    runner = sqlite_app.test_cli_runner()
    moved = runner.invoke(args=["crm", "move-to-postgres", "--from", source, "--to", target, "--org", "acme"])
    assert moved.exit_code == 0, moved.output
    assert moved.output.startswith("Moved acme: ")

    before, after = _counts(source, "acme"), _counts(target, "acme")
    assert before["contacts"] == COUNTS["contacts"] and before["deal_count"] > 0
    assert after == before  # every table's rows, the tag links, and the tallies the triggers rebuilt
    engine = create_engine(target)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM organizations")).scalar_one() == 1  # not globex
        assert connection.execute(text("SELECT count(*) FROM search_words WHERE word = 'ozymandias'")).scalar_one()
    engine.dispose()

    # The moved admin signs in on PostgreSQL and finds the contact, by a typo too (the rebuilt vocabulary).
    with postgres_app.app_context():
        user_id = db.session.scalar(select(User).where(User.email == "boss@acme.example")).get_id()
        db.session.remove()
    postgres_app.test_client_class = CSRFClient
    client = postgres_app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    assert "Ozymandias" in client.get("/contacts?q=Kingsley").get_data(as_text=True)
    assert "Ozymandias" in client.get("/search?q=ozymandas").get_data(as_text=True)

    again = runner.invoke(args=["crm", "move-to-postgres", "--from", source, "--to", target, "--org", "acme"])
    assert again.exit_code == 1 and "already has the organisation acme" in again.output
    assert _counts(target, "acme") == before


def test_the_command_refuses_what_it_cannot_move(sqlite_app, postgres_app, tmp_path):
    source, target = sqlite_app.config["SQLALCHEMY_DATABASE_URI"], postgres_app.config["SQLALCHEMY_DATABASE_URI"]
    runner = sqlite_app.test_cli_runner()
    cases = {
        ("--from", target, "--to", target): "--from must be a SQLite URL",
        ("--from", source, "--to", source): "--to must be a PostgreSQL URL",
        ("--from", source, "--to", target, "--org", "nope"): "No organisation nope",
        ("--from", f"sqlite:///{tmp_path / 'empty.sqlite3'}", "--to", target): "same migration",
    }
    for args, message in cases.items():
        result = runner.invoke(args=["crm", "move-to-postgres", *args])
        assert result.exit_code == 1 and message in result.output, (args, result.output)

"""`crm purge-trash`: retention with a dry run, counts per type, one-line errors."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from crm_web.extensions import db
from crm_web.models import Contact, Deal, RecordHistory, utcnow
from crm_web.services.base import Actor, BaseService
from tests import factories


class Contacts(BaseService[Contact]):
    model = Contact
    entity_type = "contact"


class Deals(BaseService[Deal]):
    model = Deal
    entity_type = "deal"


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def exists(model, entity_id):
    return (
        db.session.scalar(
            select(func.count()).select_from(model).where(model.id == entity_id).execution_options(include_deleted=True)
        )
        == 1
    )


def trash_aged(service, obj, days):
    service.delete(obj.id)
    model = service.model
    db.session.execute(
        update(model)
        .where(model.id == obj.id)
        .values(deleted_at=utcnow() - timedelta(days=days))
        .execution_options(include_deleted=True)
    )
    db.session.commit()


@pytest.fixture
def aged(org, users):
    admin = Actor.of(users["admin"])
    old_contact = factories.make_contact(org, first_name="Old", last_name="Timer")
    old_deal = factories.make_deal(org, name="Ancient deal")
    recent = factories.make_contact(org, first_name="Fresh", last_name="Delete")
    trash_aged(Contacts(admin), old_contact, 45)
    trash_aged(Deals(admin), old_deal, 31)
    trash_aged(Contacts(admin), recent, 2)
    return {"old_contact": old_contact, "old_deal": old_deal, "recent": recent}


def test_dry_run_lists_what_would_go_and_deletes_nothing(cli, aged, org):
    result = cli.invoke(args=["crm", "purge-trash", "--dry-run", "--org", org.slug])
    assert result.exit_code == 0, result.output
    assert "Old Timer" in result.output and "Ancient deal" in result.output and "Fresh" not in result.output
    assert (
        "Would purge 2 record(s) deleted more than 30 day(s) ago: "
        "1 contact, 0 companies, 0 leads, 1 deal, 0 activities."
    ) in result.output
    assert all(exists(m, aged[k].id) for m, k in ((Contact, "old_contact"), (Deal, "old_deal")))


def test_real_run_purges_old_trash_with_the_configured_default(cli, aged, app):
    result = cli.invoke(args=["crm", "purge-trash"])
    assert result.exit_code == 0, result.output
    assert "Purged 2 record(s) deleted more than 30 day(s) ago" in result.output
    assert not exists(Contact, aged["old_contact"].id) and not exists(Deal, aged["old_deal"].id)
    assert exists(Contact, aged["recent"].id)
    assert (
        db.session.scalar(select(func.count()).select_from(RecordHistory).where(RecordHistory.action == "purged")) == 2
    )


def test_days_option_and_config_default(cli, aged, app, monkeypatch):
    result = cli.invoke(args=["crm", "purge-trash", "--older-than-days", "40"])
    assert "Purged 1 record(s)" in result.output and exists(Deal, aged["old_deal"].id)
    monkeypatch.setitem(app.config, "TRASH_RETENTION_DAYS", 1)
    result = cli.invoke(args=["crm", "purge-trash", "--dry-run"])
    assert "Would purge 2 record(s) deleted more than 1 day(s) ago" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--older-than-days", "-3"], "--older-than-days must be a whole number"),
        (["--older-than-days", "abc"], "--older-than-days must be a whole number"),
        (["--older-than-days", ""], "--older-than-days must be a whole number"),
        (["--org", "nope"], "No organisation with slug 'nope'"),
    ],
)
def test_bad_arguments_fail_with_one_line(cli, app, args, message):
    result = cli.invoke(args=["crm", "purge-trash", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output

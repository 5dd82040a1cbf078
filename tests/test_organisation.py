"""A new organisation is usable at once; its settings (currency, time zone, retention) take effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_web.clock import local_today, zone
from crm_web.errors import PermissionDenied
from crm_web.extensions import cache, db
from crm_web.models import Organization, Pipeline, Tag, contact_tags
from crm_web.services.activities import ActivityService
from crm_web.services.base import Actor
from crm_web.services.organisations import OrganisationService
from crm_web.services.stats.units import day_bounds, week_bounds
from crm_web.services.tags import TagService
from tests import factories
from tests.conftest import LOGIN_STATEMENTS


def test_a_new_organisation_gets_a_default_pipeline(app):
    from crm_web.services import accounts

    user = accounts.create_user(org_slug="fresh", email="boss@fresh.example", password="tidal-lantern-42", role="admin")
    pipeline = db.session.scalar(select(Pipeline).where(Pipeline.org_id == user.org_id))
    assert pipeline.is_default and pipeline.currency == "USD"


def test_the_deal_form_says_why_no_deal_can_be_made_and_links_to_the_fix(client, login, org):
    login("manager")
    body = client.get("/deals/new").get_data(as_text=True)
    assert 'id="no-stage"' in body and "/pipelines" in body
    login("sales")
    body = client.get("/deals/new").get_data(as_text=True)
    assert 'id="no-stage"' in body and "Ask a manager" in body
    factories.make_pipeline(org)
    cache.clear()  # the pipeline cache learns of pipelines made through the service, not the factory
    assert 'id="no-stage"' not in client.get("/deals/new").get_data(as_text=True)


def test_new_deals_and_pipelines_start_in_the_default_currency(client, login, org):
    org.default_currency = "EUR"
    db.session.commit()
    factories.make_pipeline(org)
    login("manager")
    for url in ("/deals/new", "/pipelines/new"):
        body = client.get(url).get_data(as_text=True)
        assert '<option selected value="EUR">' in body or 'value="EUR" selected' in body, url


def test_conversion_without_a_pipeline_unticks_and_disables_the_deal_option(client, login, org):
    lead = factories.make_lead(org)
    login("admin")
    body = client.get(f"/leads/{lead.id}/convert").get_data(as_text=True)
    checkbox = next(tag for tag in body.split("<input") if 'name="create_deal"' in tag)
    assert "disabled" in checkbox and "checked" not in checkbox
    response = client.post(f"/leads/{lead.id}/convert", data={"deal_name": ""})  # the disabled box posts nothing
    assert response.status_code == 303


def test_the_getting_started_checklist_ticks_itself(client, login, org, users, count_queries):
    login("admin")
    body = client.get("/").get_data(as_text=True)
    assert 'id="getting-started"' in body and "Open pipeline" in body  # the key figures stay
    assert 'data-step="team"' in body and "1 of 3 done" in body  # three users: the team is there
    assert client.post("/settings/organisation/stages-reviewed").status_code == 303
    factories.make_contact(org)
    assert "3 of 3 done" in client.get("/").get_data(as_text=True)
    factories.make_activity(org)
    body = client.get("/").get_data(as_text=True)
    assert 'id="getting-started"' not in body and 'id="activity-charts"' in body


def test_the_checklist_costs_one_statement_and_only_for_an_empty_organisation(client, login, org, count_queries):
    login("admin")
    client.get("/")  # warm the caches
    with count_queries() as empty:
        client.get("/")
    factories.make_activity(org)
    client.get("/")
    with count_queries() as busy:
        client.get("/")
    assert empty.count == busy.count + 1 == LOGIN_STATEMENTS + 2, (empty, busy)


# --- the organisation's time zone ---------------------------------------------------------------


def test_today_and_this_week_follow_the_organisations_time_zone():
    tokyo = zone("Asia/Tokyo")
    now = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # already Monday 2 March, 05:00 in Tokyo
    assert day_bounds(now, tokyo) == (datetime(2026, 3, 1, 15, 0, tzinfo=UTC), datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
    assert week_bounds(now, tokyo)[0] == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    assert week_bounds(now)[0] == datetime(2026, 2, 23, tzinfo=UTC)  # still Sunday in UTC
    assert local_today("Asia/Tokyo", now).isoformat() == "2026-03-02"
    assert zone("Not/AZone") is UTC


def test_the_due_today_view_uses_the_organisations_day(org, users):
    now = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # Sunday 1 March in UTC, Monday 2 March in Tokyo
    activity = factories.make_activity(org, due_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    actor = Actor.of(users["admin"])
    in_tokyo = Actor(actor.org_id, actor.user_id, actor.role, actor.name, time_zone="Asia/Tokyo")
    assert [a.id for a in ActivityService(in_tokyo).list_page(view="today", now=now).items] == [activity.id]
    assert ActivityService(actor).list_page(view="today", now=now).items == []


def test_a_signed_in_actor_carries_the_organisations_time_zone(client, login, org, users):
    org.time_zone = "Europe/Paris"
    db.session.commit()
    user = db.session.scalar(select(type(users["admin"])).where(type(users["admin"]).id == users["admin"].id))
    assert Actor.of(user).time_zone == "UTC"  # the organisation is not loaded: no query, the default
    from sqlalchemy.orm import joinedload

    loaded = db.session.scalar(
        select(type(user))
        .options(joinedload(type(user).org))
        .where(type(user).id == user.id)
        .execution_options(populate_existing=True)
    )
    assert Actor.of(loaded).time_zone == "Europe/Paris"


# --- retention -----------------------------------------------------------------------------------


def test_purge_trash_uses_each_organisations_retention(app, org, other_org):
    old = datetime.now(UTC) - timedelta(days=10)
    factories.make_contact(org, deleted_at=old)
    factories.make_contact(other_org, deleted_at=old)
    org.trash_retention_days = 7
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "purge-trash"])
    assert result.exit_code == 0, result.output
    assert f"{org.slug} keeps its trash 7 day(s)" in result.output
    assert "Purged 1 record(s) deleted more than 30 day(s) ago" in result.output


def test_purge_trash_purges_old_deleted_tags_too(app, org):
    factories.make_tag(org, name="Old", deleted_at=datetime.now(UTC) - timedelta(days=40))
    factories.make_tag(org, name="Recent", deleted_at=datetime.now(UTC) - timedelta(days=2))
    runner = app.test_cli_runner()
    assert "Would purge 1 deleted tag(s)" in runner.invoke(args=["crm", "purge-trash", "--dry-run"]).output
    assert "Purged 1 deleted tag(s)" in runner.invoke(args=["crm", "purge-trash"]).output
    names = db.session.scalars(select(Tag.name).where(Tag.org_id == org.id).execution_options(include_deleted=True))
    assert list(names) == ["Recent"]


# --- tags: a deleted tag leaves every record and picker -------------------------------------------


def test_a_deleted_tag_leaves_records_and_pickers_and_its_name_can_be_reused(org, users):
    tag = factories.make_tag(org, name="Hot")
    contact = factories.make_contact(org)
    db.session.execute(contact_tags.insert().values(contact_id=contact.id, tag_id=tag.id))
    db.session.commit()
    service = TagService(Actor.of(users["manager"]))
    service.delete(tag.id)
    assert service.choices().tags == []
    assert service.state("contact", contact.id).tags == []
    reused = service.assign("contact", contact.id, name="Hot")  # the trashed tag gives its name up
    assert [t.name for t in reused.tags] == ["Hot"] and reused.tags[0].id != tag.id
    assert db.session.scalar(select(Tag.id).where(Tag.id == tag.id).execution_options(include_deleted=True)) is None
    with pytest.raises(PermissionDenied):
        TagService(Actor.of(users["sales"])).delete(reused.tags[0].id)


def test_organisation_service_refuses_bad_values_and_non_admins(users):
    from crm_web.errors import ValidationError

    with pytest.raises(PermissionDenied):
        OrganisationService(Actor.of(users["manager"])).update(
            name="X", default_currency="USD", time_zone="UTC", trash_retention_days=None
        )
    with pytest.raises(ValidationError) as error:
        OrganisationService(Actor.of(users["admin"])).update(
            name="X", default_currency="USD", time_zone="UTC", trash_retention_days=99999
        )
    assert "trash_retention_days" in error.value.field_errors
    assert isinstance(db.session.get(Organization, users["admin"].org_id), Organization)

"""My day: the user's activities due today or overdue, deals rotting or closing this week, records
someone else recently assigned to them; only their own; constant statements."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from crm_web.extensions import db
from crm_web.models import Deal, PipelineStage
from crm_web.services.contacts import ContactService
from crm_web.services.deals import DealService
from crm_web.services.my_day import MyDayService
from tests import factories
from tests.conftest import LOGIN_STATEMENTS, tenant_statements

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def frozen(app, monkeypatch):
    monkeypatch.setitem(app.config, "CLOCK", lambda: NOW)
    return NOW


@pytest.fixture
def world(org, users, frozen):
    sales, manager = users["sales"], users["manager"]
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    db.session.get(PipelineStage, stages[1].id).rotting_days = 3
    db.session.commit()
    made = {
        "overdue": factories.make_activity(org, owner_id=sales.id, due_at=NOW - timedelta(days=2), subject="Overdue"),
        "today": factories.make_activity(org, owner_id=sales.id, due_at=NOW + timedelta(hours=3), subject="Today"),
        "done": factories.make_activity(
            org, owner_id=sales.id, due_at=NOW - timedelta(hours=1), subject="Done", status="completed"
        ),
        "tomorrow": factories.make_activity(org, owner_id=sales.id, due_at=NOW + timedelta(days=1), subject="Later"),
        "not_mine": factories.make_activity(org, owner_id=manager.id, due_at=NOW, subject="Manager's"),
        "rotting": factories.make_deal(org, stage=stages[1], owner_id=sales.id, name="Rotting deal"),
        "closing": factories.make_deal(
            org, stage=stages[0], owner_id=sales.id, name="Closing deal", expected_close_date=date(2026, 5, 24)
        ),
        "next_week": factories.make_deal(
            org, stage=stages[0], owner_id=sales.id, name="Next week", expected_close_date=date(2026, 5, 26)
        ),
        "fresh": factories.make_deal(org, stage=stages[1], owner_id=sales.id, name="Fresh"),
        "won": factories.make_deal(
            org, stage=stages[3], owner_id=sales.id, status="won", name="Won", expected_close_date=date(2026, 5, 21)
        ),
    }
    db.session.execute(
        update(Deal).where(Deal.id == made["rotting"].id).values(stage_changed_at=NOW - timedelta(days=5))
    )
    db.session.execute(update(Deal).where(Deal.id == made["fresh"].id).values(stage_changed_at=NOW - timedelta(days=1)))
    db.session.commit()
    return made


def test_my_day_lists_my_due_and_overdue_activities_and_deals_that_need_me(world, users):
    day = MyDayService(factories.actor_for(users["sales"])).my_day()
    assert [a.activity.subject for a in day.activities] == ["Overdue", "Done", "Today"]
    assert [a.overdue for a in day.activities] == [True, False, False]
    deals = {d.deal.name: (d.rotting, d.closing_this_week) for d in day.deals}
    assert deals == {"Rotting deal": (True, False), "Closing deal": (False, True)}
    assert day.overdue_count == 1


def test_recently_assigned_records_are_those_others_gave_me(world, org, users):
    sales, manager = users["sales"], users["manager"]
    by_manager = DealService(factories.actor_for(manager))
    handed = by_manager.create(stage_id=world["fresh"].stage_id, name="Handed over", owner_id=manager.id)
    by_manager.update(handed.id, owner_id=sales.id)
    contact = ContactService(factories.actor_for(manager)).create(
        first_name="Ada", last_name="Byron", owner_id=sales.id
    )
    ContactService(factories.actor_for(sales)).create(first_name="Own", last_name="Self")  # mine, by me
    renamed = by_manager.create(stage_id=world["fresh"].stage_id, name="Manager keeps", owner_id=manager.id)
    by_manager.update(renamed.id, name="Manager still keeps")
    day = MyDayService(factories.actor_for(sales)).my_day(now=datetime.now(UTC))
    assert {(a.kind, a.id) for a in day.assigned} == {("deal", handed.id), ("contact", contact.id)}


def test_page_is_in_the_navigation_for_everyone_and_shows_only_my_things(client, login, world):
    for role in ("sales", "manager", "admin"):
        login(role)
        page = client.get("/my-day")
        assert page.status_code == 200 and b'href="/my-day"' in page.data
    login("sales")
    html = client.get("/my-day").get_data(as_text=True)
    assert "Overdue" in html and "Manager's" not in html and "Rotting deal" in html and "data-rotting" in html
    assert "Next week" not in html and ">Won<" not in html


@pytest.mark.parametrize("extra", [0, 20])
def test_statements_do_not_grow_with_the_rows(client, login, world, org, users, count_queries, engine_name, extra):
    sales = users["sales"]
    company = factories.make_company(org, name="Initech")
    for n in range(extra):
        factories.make_activity(org, owner_id=sales.id, due_at=NOW - timedelta(hours=n), company_id=company.id)
        factories.make_deal(
            org,
            pipeline=None,
            stage=db.session.get(PipelineStage, world["closing"].stage_id),
            owner_id=sales.id,
            expected_close_date=date(2026, 5, 22),
            company_id=company.id,
        )
    login("sales")
    with count_queries() as q:
        page = client.get("/my-day")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert len(re.findall(r"data-activity-id=", html)) == 3 + extra
    # each activity's links are named (services/my_day.LINK_NAMES), in the same statement
    assert html.count(f'href="/companies/{company.id}" title="Company">Initech</a>') == extra
    assert q.count <= LOGIN_STATEMENTS + 3 + tenant_statements(engine_name, commits=0), q


def test_sales_land_on_my_day_and_managers_on_the_dashboard(client, login, world, count_queries, engine_name):
    login("sales")
    with count_queries() as q:
        home = client.get("/")
    html = home.get_data(as_text=True)
    assert home.status_code == 200 and "<h1>My day" in html and "Rotting deal" in html
    assert '<a href="/my-day" class="active" aria-current="page">My day</a>' in html
    assert q.count <= LOGIN_STATEMENTS + 3 + tenant_statements(engine_name, commits=0), q
    dashboard = client.get("/dashboard").get_data(as_text=True)  # the dashboard stays one click away
    assert "<h1>Dashboard" in dashboard and '<a href="/dashboard" class="active" aria-current="page">' in dashboard
    for role in ("manager", "admin"):
        login(role)
        html = client.get("/").get_data(as_text=True)
        assert "<h1>Dashboard" in html and "<h1>My day" not in html
        assert "<h1>Dashboard" in client.get("/dashboard").get_data(as_text=True)

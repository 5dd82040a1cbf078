"""Dashboard: every number against a hand-computed fixture, owner scopes, panels, query budgets, SVG a11y."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from crm_web.errors import NotFound, PermissionDenied
from crm_web.models import utcnow
from crm_web.services.stats.dashboard import DashboardService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS

TODAY = utcnow().date()
THIS_MONTH = TODAY.replace(day=1)
LAST_MONTH_DAY = THIS_MONTH - timedelta(days=1)


def at_noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


@pytest.fixture
def pipeline_data(org, users):
    """Sales: open 1000 @ Lead in (10 %), open 2000 @ Proposal with its own 25 %, won 3000 this month,
    lost 500 last month. Manager: open 4000 @ Negotiation (80 %). Plus a deleted deal that never counts."""
    sales, manager = users["sales"], users["manager"]
    pipeline = factories.make_pipeline(org, name="Sales")
    lead_in, proposal, negotiation, won, lost = factories.stages_of(pipeline)
    factories.make_deal(org, stage=lead_in, value=Decimal("1000"), owner_id=sales.id, expected_close_date=TODAY)
    factories.make_deal(
        org, stage=proposal, value=Decimal("2000"), probability=25, owner_id=sales.id, expected_close_date=TODAY
    )
    factories.make_deal(
        org,
        stage=won,
        value=Decimal("3000"),
        status="won",
        owner_id=sales.id,
        closed_at=at_noon(TODAY),
        expected_close_date=TODAY,
    )
    factories.make_deal(
        org, stage=lost, value=Decimal("500"), status="lost", owner_id=sales.id, closed_at=at_noon(LAST_MONTH_DAY)
    )
    factories.make_deal(org, stage=negotiation, value=Decimal("4000"), owner_id=manager.id)
    factories.make_deal(org, stage=negotiation, value=Decimal("9999"), owner_id=sales.id, deleted_at=utcnow())
    now = utcnow()
    factories.make_activity(org, owner_id=sales.id, type="call", status="pending", due_at=now - timedelta(days=1))
    factories.make_activity(org, owner_id=sales.id, type="task", status="in_progress", due_at=now + timedelta(days=2))
    factories.make_activity(org, owner_id=sales.id, type="task", status="completed", due_at=now - timedelta(days=3))
    factories.make_activity(org, owner_id=manager.id, type="email", status="pending", due_at=now - timedelta(days=2))
    return pipeline


def service(user) -> DashboardService:
    return DashboardService(factories.actor_for(user))


def test_sales_kpis_are_their_own(pipeline_data, users):
    svc = service(users["sales"])
    scope = svc.resolve_scope(None)
    assert scope.owner_id == users["sales"].id and not scope.can_switch
    kpis = svc.dashboard(scope)["kpis"]
    assert kpis["open_value"] == Decimal("3000.00")
    assert kpis["weighted"] == Decimal("600.00")  # 1000 x 10 % + 2000 x 25 %
    assert kpis["won_this_month"] == Decimal("3000.00") and kpis["won_this_month_count"] == 1
    assert kpis["win_rate"] == 50.0
    assert kpis["open_tasks"] == 2 and kpis["overdue_tasks"] == 1


def test_team_kpis(pipeline_data, users):
    svc = service(users["manager"])
    scope = svc.resolve_scope("all")
    kpis = svc.dashboard(scope)["kpis"]
    assert kpis["open_value"] == Decimal("7000.00")
    assert kpis["weighted"] == Decimal("3800.00")  # 600 + 4000 x 80 %
    assert kpis["open_tasks"] == 3 and kpis["overdue_tasks"] == 2


def test_manager_picks_an_owner(pipeline_data, users):
    svc = service(users["manager"])
    scope = svc.resolve_scope(str(users["sales"].id))
    assert scope.owner_id == users["sales"].id and scope.label == users["sales"].name
    assert svc.kpis(scope)["open_value"] == Decimal("3000.00")
    assert svc.resolve_scope("me").owner_id == users["manager"].id
    assert svc.resolve_scope(None).key == "all"


def test_deals_by_stage(pipeline_data, users):
    svc = service(users["manager"])
    bars = svc.deals_by_stage(svc.resolve_scope("all"))
    assert [(b.stage, b.count, b.value, b.weighted) for b in bars] == [
        ("Lead in", 1, Decimal("1000.00"), Decimal("100.00")),
        ("Proposal", 1, Decimal("2000.00"), Decimal("500.00")),
        ("Negotiation", 1, Decimal("4000.00"), Decimal("3200.00")),
    ]
    mine = svc.deals_by_stage(svc.resolve_scope("me"))
    assert [(b.stage, b.count) for b in mine] == [("Lead in", 0), ("Proposal", 0), ("Negotiation", 1)]


def test_won_lost_per_month(pipeline_data, users):
    svc = service(users["sales"])
    months = svc.won_lost(svc.resolve_scope(None))
    assert len(months) == 6 and months[-1].month == THIS_MONTH
    assert (months[-1].won_count, months[-1].won_value, months[-1].lost_count) == (1, Decimal("3000.00"), 0)
    assert (months[-2].won_count, months[-2].lost_count, months[-2].lost_value) == (0, 1, Decimal("500.00"))
    assert all(m.won_count == m.lost_count == 0 for m in months[:-2])


def test_forecast_panel(pipeline_data, users):
    svc = service(users["sales"])
    months = svc.forecast(svc.resolve_scope(None))
    assert len(months) == 6 and months[0].month == THIS_MONTH
    # open 1000 x 10 % + 2000 x 25 % + won 3000 x 100 %; best case counts every open and won deal in full.
    assert months[0].weighted == Decimal("3600.00") and months[0].best_case == Decimal("6000.00")


def test_activity_charts(pipeline_data, users):
    svc = service(users["sales"])
    charts = svc.activity_charts(svc.resolve_scope(None))
    assert dict(charts["by_type"]) == {"Task": 2, "Note": 0, "Call": 1, "Email": 0, "Meeting": 0}
    assert dict(charts["by_status"]) == {"Pending": 1, "In progress": 1, "Completed": 1, "Cancelled": 0}


def test_scope_rules(pipeline_data, users, other_org):
    with pytest.raises(PermissionDenied):
        service(users["sales"]).resolve_scope("all")
    with pytest.raises(PermissionDenied):
        service(users["sales"]).resolve_scope(str(users["manager"].id))
    assert service(users["sales"]).resolve_scope(str(users["sales"].id)).key == "me"
    outsider = factories.make_user(other_org)
    with pytest.raises(NotFound):
        service(users["manager"]).resolve_scope(str(outsider.id))


def test_empty_org_renders(client, login):
    login("sales")
    response = client.get("/dashboard")  # a sales user's `/` is My day (tests/test_my_day.py)
    assert response.status_code == 200 and "Open pipeline" in response.get_data(as_text=True)


# --- the page ------------------------------------------------------------------------------


def test_page_has_every_panel_and_accessible_charts(client, login, pipeline_data):
    login("manager")
    html = client.get("/").get_data(as_text=True)
    for panel_id in ("kpis", "deals-by-stage", "forecast", "won-lost", "activity-charts"):
        assert f'id="{panel_id}"' in html
    charts = re.findall(r'<svg [^>]*aria-labelledby="([^"]+)"', html)
    assert len(charts) == 5
    for ids in charts:
        for part in ids.split():
            assert f'id="{part}"' in html
    assert html.count('class="sr-only" id="chart-') == 5  # the data tables
    assert "Expected close month" in html and "Closing month" in html and "Stage" in html


# A fixed unknown UUID: the test ids must be the same in every pytest-xdist worker's collection.
@pytest.mark.parametrize(
    "query,status",
    [("owner=junk", 400), ("owner=5f0c2a6e-1d1b-4c52-9a77-2f3d8e6b1c40", 404), ("owner=" + "x" * 50, 400)],
)
def test_bad_owner_param(client, login, query, status):
    login("manager")
    assert client.get(f"/?{query}").status_code == status


def test_sales_cannot_see_the_team(client, login):
    login("sales")
    assert client.get("/?owner=all").status_code == 403
    assert client.get("/?owner=me").status_code == 200


def test_owner_switch_changes_numbers(client, login, pipeline_data, users):
    login("manager")
    team = client.get("/?owner=all").get_data(as_text=True)
    assert "$7,000" in team
    rep = client.get(f"/?owner={users['sales'].id}").get_data(as_text=True)
    assert "$3,000" in rep and users["sales"].name in rep


@pytest.mark.parametrize(
    "panel,dom_id",
    [
        ("kpis", "kpis"),
        ("deals_by_stage", "deals-by-stage"),
        ("forecast", "forecast"),
        ("won_lost", "won-lost"),
        ("activity_charts", "activity-charts"),
    ],
)
def test_each_panel_has_its_own_url(client, login, pipeline_data, panel, dom_id):
    login("manager")
    response = client.get(f"/dashboard/{panel}?owner=all", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith(f'<section id="{dom_id}"')
    assert "<html" not in body and "HX-Request" in response.headers["Vary"]


def test_panel_errors(client, login):
    login("manager")
    assert client.get("/dashboard/nope", headers=HX).status_code == 404
    assert client.get("/dashboard/kpis").status_code == 303


def test_owner_switch_fragment(client, login, pipeline_data):
    login("manager")
    body = client.get("/?owner=me", headers=HX).get_data(as_text=True)
    assert body.lstrip().startswith('<div id="dashboard-panels"') and "<html" not in body


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_query_budget_cold_and_warm(client, login, pipeline_data, count_queries, role):
    login(role)
    with count_queries() as cold:  # /dashboard: a sales user's `/` is My day (its budget: tests/test_my_day.py)
        assert client.get("/dashboard").status_code == 200
    with count_queries() as warm:
        assert client.get("/dashboard").status_code == 200
    assert cold.count <= 8, cold
    # Every panel comes from the cache; a manager's owner switcher still lists the team.
    assert warm.count == LOGIN_STATEMENTS + (1 if role == "manager" else 0), warm


def test_budget_does_not_grow_with_data(client, org, login, users, pipeline_data, count_queries):
    login("manager")
    with count_queries() as few:
        client.get("/?owner=all")
    stages = factories.stages_of(pipeline_data)
    for i in range(20):
        factories.make_deal(org, stage=stages[i % 3], value=Decimal(100 + i), owner_id=users["sales"].id)
        factories.make_activity(org, owner_id=users["sales"].id)
    from crm_web.extensions import cache

    cache.clear()
    with count_queries() as many:
        client.get("/?owner=all")
    assert few.count == many.count


def test_the_overdue_kpi_counts_old_and_todays_tasks_and_follows_their_changes(pipeline_data, org, users):
    """Overdue = the tallied days before today + today's tasks due before now (migration 0041): a task
    months overdue and one due an instant ago both count; completing or rescheduling one shows at once."""
    from crm_web.services.activities import ActivityService

    sales = users["sales"]
    now = utcnow()
    old = factories.make_activity(org, owner_id=sales.id, status="pending", due_at=now - timedelta(days=90))
    factories.make_activity(org, owner_id=sales.id, status="pending", due_at=now - timedelta(seconds=5))
    factories.make_activity(org, owner_id=sales.id, status="pending", due_at=now + timedelta(hours=1))
    svc = service(users["manager"])
    assert svc.kpis(svc.resolve_scope("all"))["overdue_tasks"] == 4
    assert svc.kpis(svc.resolve_scope(str(sales.id)))["overdue_tasks"] == 3
    ActivityService(factories.actor_for(sales)).set_completed(old.id, completed=True)
    svc = service(users["manager"])
    assert svc.kpis(svc.resolve_scope("all"))["overdue_tasks"] == 3
    assert svc.kpis(svc.resolve_scope(str(sales.id)))["overdue_tasks"] == 2

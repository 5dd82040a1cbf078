"""The calendar of activities: week and month in the organisation's time zone, mine or the team's,
the list's filter, rescheduling by a drop (version check, Undo), statements constant in the number of
activities, other organisations' activities invisible."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Activity
from crm_web.services.calendar import CalendarService, calendar_range
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS, tenant_statements

# Wednesday 20 May 2026, 12:00 UTC = 22:00 in Sydney (UTC+10).
NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen(app, monkeypatch):
    monkeypatch.setitem(app.config, "CLOCK", lambda: NOW)
    return NOW


def due(org, owner, when, **values):
    return factories.make_activity(org, owner_id=owner.id, due_at=when, **values)


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'data-activity-id="([0-9a-f-]+)"', html))


def test_ranges_are_whole_weeks_starting_monday():
    assert calendar_range("week", date(2026, 5, 20)) == (date(2026, 5, 18), date(2026, 5, 25))
    start, end = calendar_range("month", date(2026, 5, 20))
    assert (start, end) == (date(2026, 4, 27), date(2026, 6, 1)) and (end - start).days % 7 == 0


def test_week_shows_my_activities_by_local_day_and_hour(org, users, frozen):
    sales = users["sales"]
    late = due(org, sales, datetime(2026, 5, 19, 15, 30, tzinfo=UTC), subject="Late call")  # Wed 01:30 Sydney
    other = due(org, users["manager"], NOW, subject="Not mine")
    cal = CalendarService(replace(factories.actor_for(sales), time_zone="Australia/Sydney")).calendar(mode="week")
    found = {(d.day, i.local.hour): i.activity.id for d in cal.days for i in d.items}
    assert found == {(date(2026, 5, 20), 1): late.id}
    assert other.id not in {i.activity.id for d in cal.days for i in d.items}
    assert cal.today == date(2026, 5, 20) and [d.day for d in cal.days if d.is_today] == [date(2026, 5, 20)]


def test_overdue_and_completed_are_marked(org, users, frozen):
    sales = users["sales"]
    overdue = due(org, sales, NOW - timedelta(hours=2), subject="Overdue")
    done = due(org, sales, NOW - timedelta(hours=3), subject="Done", status="completed", completed_at=NOW)
    upcoming = due(org, sales, NOW + timedelta(hours=2), subject="Later")
    cal = CalendarService(factories.actor_for(sales)).calendar(mode="month")
    marks = {i.activity.id: (i.overdue, i.completed) for d in cal.days for i in d.items}
    assert marks == {overdue.id: (True, False), done.id: (False, True), upcoming.id: (False, False)}


def test_team_view_is_for_managers_only(client, login, org, users, frozen):
    mine = due(org, users["sales"], NOW, subject="Sales call")
    theirs = due(org, users["manager"], NOW, subject="Manager call")
    login("sales")
    assert client.get("/activities/calendar?who=team").status_code == 403
    assert ids_in(client.get("/activities/calendar").get_data(as_text=True)) == {str(mine.id)}
    login("manager")
    page = client.get("/activities/calendar?who=team&mode=month").get_data(as_text=True)
    assert ids_in(page) == {str(mine.id), str(theirs.id)}


def item_html(html: str, activity) -> str:
    """One calendar item's markup, from its opening tag to its closing one."""
    start = html.index(f'id="calendar-item-{activity.id}"')
    return html[html.rindex("<li", 0, start) : html.index("</li>", start)]


def test_an_item_shows_its_columns_and_owner_and_says_whether_it_moves(client, login, org, users, frozen):
    """The items are read as the columns they show (services/calendar.ShownActivity): subject, type,
    version, the owner's name on the team's view only, and movable by whoever sees it (the team's view is
    for managers; a sales user's calendar is their own)."""
    mine = due(org, users["manager"], NOW, subject="Quarterly review", type="meeting")
    theirs = due(org, users["sales"], NOW + timedelta(hours=1), subject="Intro call", type="call")
    item = CalendarService(factories.actor_for(users["manager"])).calendar(who="team").days[2].items[0]
    assert (item.activity.id, item.activity.subject, item.activity.owner_name) == (
        mine.id,
        "Quarterly review",
        users["manager"].name,
    )
    login("manager")
    html = client.get("/activities/calendar?who=team").get_data(as_text=True)
    shown = item_html(html, theirs)
    assert "calendar-call" in shown and "Intro call" in shown and f'data-version="{theirs.version}"' in shown
    assert f'<span class="muted small calendar-owner">{users["sales"].name}</span>' in shown
    assert "data-locked" not in shown and "data-locked" not in item_html(html, mine)
    assert "calendar-owner" not in item_html(client.get("/activities/calendar").get_data(as_text=True), mine)
    login("sales")
    own = item_html(client.get("/activities/calendar").get_data(as_text=True), theirs)
    assert "data-locked" not in own and "calendar-owner" not in own


def test_the_week_puts_each_item_in_its_day_and_hour_slot_and_the_month_in_its_day(client, login, org, users, frozen):
    sales = users["sales"]
    noon = due(org, sales, NOW, subject="Noon call")
    evening = due(org, sales, NOW + timedelta(days=1, hours=7), subject="Evening call")
    login("sales")
    week = client.get("/activities/calendar").get_data(as_text=True)
    slots = re.findall(
        r'<ol class="calendar-list"[^>]*data-date="([\d-]+)" data-time="(\d\d:00)" aria-label="(\w+) \2">(.*?)</ol>',
        week,
        re.S,
    )
    assert len(slots) == 7 * 24
    filled = {(day, at, name): ids_in(items) for day, at, name, items in slots if ids_in(items)}
    assert filled == {
        ("2026-05-20", "12:00", "Wednesday"): {str(noon.id)},
        ("2026-05-21", "19:00", "Thursday"): {str(evening.id)},
    }
    month = client.get("/activities/calendar?mode=month").get_data(as_text=True)
    days = re.findall(r'<ol class="calendar-list"[^>]*data-date="([\d-]+)" aria-label="[^"]+">(.*?)</ol>', month, re.S)
    assert {day: ids_in(items) for day, items in days if ids_in(items)} == {
        "2026-05-20": {str(noon.id)},
        "2026-05-21": {str(evening.id)},
    }


def test_the_list_filter_narrows_the_calendar(client, login, org, users, frozen):
    sales = users["sales"]
    call = due(org, sales, NOW, subject="Call", type="call")
    due(org, sales, NOW, subject="Meeting", type="meeting")
    login("sales")
    html = client.get("/activities/calendar?f=type.equals.call", headers=HX).get_data(as_text=True)
    assert 'id="calendar"' in html and "<html" not in html and ids_in(html) == {str(call.id)}
    bad = client.get("/activities/calendar?f=nope.equals.x", headers=HX)
    assert bad.status_code == 422


def test_bad_parameters_are_400(client, login, frozen):
    login("sales")
    assert client.get("/activities/calendar?date=2026-13-40").status_code == 400
    assert client.get("/activities/calendar?mode=year").status_code == 400


@pytest.mark.parametrize("count", [1, 30])
def test_statements_do_not_grow_with_activities(client, login, org, users, frozen, count_queries, engine_name, count):
    sales = users["sales"]
    contact = factories.make_contact(org, first_name="Ada", last_name="L")
    for n in range(count):
        due(org, sales, NOW + timedelta(hours=n % 48), contact_id=contact.id)
    login("manager")
    with count_queries() as q:
        page = client.get("/activities/calendar?who=team&mode=month")
    assert page.status_code == 200 and len(ids_in(page.get_data(as_text=True))) == count
    assert q.count <= LOGIN_STATEMENTS + 3 + tenant_statements(engine_name, commits=0), q


def test_a_full_range_shows_the_earliest_and_counts_the_rest(client, login, org, users, frozen, monkeypatch):
    """The cap cuts the range's earliest activities (trashed ones neither shown nor counted), each with
    its owner's name, and the page says how many there are."""
    monkeypatch.setattr("crm_web.services.calendar.CALENDAR_LIMIT", 3)
    sales = users["sales"]
    contact = factories.make_contact(org, first_name="Ada", last_name="Lovelace")
    made = [due(org, sales, NOW + timedelta(hours=n), contact_id=contact.id) for n in (4, 1, 3, 0, 2)]
    trashed = due(org, sales, NOW - timedelta(hours=1), deleted_at=NOW)
    cal = CalendarService(factories.actor_for(sales)).calendar(mode="week")
    shown = [i.activity for d in cal.days for i in d.items]
    assert [a.id for a in shown] == [made[3].id, made[1].id, made[4].id] and trashed.id not in {a.id for a in shown}
    assert (cal.shown, cal.total) == (3, 5) and {a.owner_name for a in shown} == {sales.name}
    login("sales")
    html = client.get("/activities/calendar").get_data(as_text=True)
    assert len(ids_in(html)) == 3 and "Showing the first 3 of 5 activities" in html


def test_a_range_past_the_count_bound_says_more_than_the_bound(client, login, app, org, users, frozen, monkeypatch):
    """The range's count stops at the lists' bound (LIST_COUNT_BOUND), so a big organisation's busy
    month costs no count of every activity in it: the page says "more than" the bound."""
    monkeypatch.setattr("crm_web.services.calendar.CALENDAR_LIMIT", 2)
    monkeypatch.setitem(app.config, "LIST_COUNT_BOUND", 3)
    sales = users["sales"]
    for n in range(5):
        due(org, sales, NOW + timedelta(hours=n))
    cal = CalendarService(factories.actor_for(sales)).calendar(mode="week")
    assert (cal.shown, cal.total, cal.more) == (2, 3, True)
    login("sales")
    html = client.get("/activities/calendar").get_data(as_text=True)
    assert len(ids_in(html)) == 2 and "Showing the first 2 of more than 3 activities" in html
    monkeypatch.setitem(app.config, "LIST_COUNT_BOUND", 5)  # exactly the bound: counted, not "more"
    cal = CalendarService(factories.actor_for(sales)).calendar(mode="week")
    assert (cal.shown, cal.total, cal.more) == (2, 5, False)


def reschedule(client, activity, *, version=None, query="", **form):
    data = {"version": str(activity.version if version is None else version), **form}
    return client.post(f"/activities/{activity.id}/reschedule{query}", data=data, headers=HX)


def test_drop_reschedules_keeping_the_local_time_and_undo_puts_it_back(client, login, org, users, frozen):
    org.time_zone = "Europe/Berlin"
    db.session.commit()
    sales = users["sales"]
    activity = due(org, sales, datetime(2026, 5, 20, 7, 30, tzinfo=UTC))  # 09:30 in Berlin
    before = activity.version
    login("sales")
    response = reschedule(client, activity, date="2026-05-22", query="?mode=month")
    assert response.status_code == 200, response.data
    moved = db.session.get(Activity, activity.id, populate_existing=True)
    assert moved.due_at == datetime(2026, 5, 22, 7, 30, tzinfo=UTC) and moved.version == before + 1
    html = response.get_data(as_text=True)
    assert 'id="calendar"' in html and "Undo" in html and "calendar-month" in html
    undo_vals = re.search(r"hx-vals='([^']+)'", html).group(1)
    assert '"due_at": "2026-05-20T07:30:00+00:00"' in undo_vals
    undo = client.post(
        re.search(r'hx-post="([^"]+reschedule[^"]*)"', html).group(1).replace("&amp;", "&"),
        data={"due_at": "2026-05-20T07:30:00+00:00", "version": str(moved.version)},
        headers=HX,
    )
    assert undo.status_code == 200
    back = db.session.get(Activity, activity.id, populate_existing=True)
    assert back.due_at == datetime(2026, 5, 20, 7, 30, tzinfo=UTC)


def test_week_drop_sets_the_hour(client, login, org, users, frozen):
    activity = due(org, users["sales"], datetime(2026, 5, 20, 7, 30, tzinfo=UTC))
    login("sales")
    assert reschedule(client, activity, date="2026-05-21", time="15:00").status_code == 200
    assert db.session.scalar(select(Activity.due_at).where(Activity.id == activity.id)) == datetime(
        2026, 5, 21, 15, 0, tzinfo=UTC
    )


def test_a_stale_version_is_a_conflict_and_changes_nothing(client, login, org, users, frozen):
    activity = due(org, users["sales"], NOW)
    login("sales")
    response = reschedule(client, activity, version=activity.version - 1 if activity.version else 99, date="2026-05-25")
    assert response.status_code == 409
    assert db.session.scalar(select(Activity.due_at).where(Activity.id == activity.id)) == NOW


def test_sales_cannot_move_someone_elses_activity_and_other_orgs_are_404(client, login, org, other_org, users, frozen):
    theirs = due(org, users["manager"], NOW)
    foreign = factories.make_activity(other_org, due_at=NOW)
    login("sales")
    assert reschedule(client, theirs, date="2026-05-25").status_code == 403
    assert reschedule(client, foreign, date="2026-05-25").status_code == 404
    login("admin")
    assert reschedule(client, foreign, date="2026-05-25").status_code == 404
    assert client.get(f"/activities/calendar?f=owner.equals.{users['manager'].id}&who=team").status_code == 200


def test_reschedule_rejects_junk_and_needs_csrf(client, login, org, users, frozen):
    activity = due(org, users["sales"], NOW)
    login("sales")
    assert reschedule(client, activity, date="not-a-day").status_code == 400
    junk = {"date": "2026-05-25", "version": "x"}
    assert client.post(f"/activities/{activity.id}/reschedule", data=junk, headers=HX).status_code == 400
    no_csrf = client.post(
        f"/activities/{activity.id}/reschedule", data={"date": "2026-05-25", "version": "1"}, headers=HX, csrf=False
    )
    assert no_csrf.status_code == 400
    assert db.session.scalar(select(Activity.due_at).where(Activity.id == activity.id)) == NOW

"""The organisation's time zone decides "today", "this week" and overdue everywhere: list filters, the
activities list, the board, the dashboard and the CSV file name. The clock is injected (app config CLOCK).

NOW is Sunday 8 March 2026, 20:00 UTC: already Monday 9 March, 09:00 in Auckland (UTC+13), so the UTC
day and week differ from the organisation's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from werkzeug.datastructures import MultiDict

from crm_web import clock
from crm_web.entities import CONTACT, DEAL
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.services.base import Actor
from crm_web.services.board import BoardService
from crm_web.services.contacts import ContactService
from crm_web.services.deals import DealService
from crm_web.services.stats.dashboard import DashboardService
from tests import factories

NOW = datetime(2026, 3, 8, 20, 0, tzinfo=UTC)
AUCKLAND = "Pacific/Auckland"


@pytest.fixture
def frozen(app, monkeypatch):
    """The app's clock stopped at NOW."""
    monkeypatch.setitem(app.config, "CLOCK", lambda: NOW)
    return NOW


@pytest.fixture
def in_utc(users) -> Actor:
    return factories.actor_for(users["admin"])


@pytest.fixture
def in_auckland(in_utc) -> Actor:
    return replace(in_utc, time_zone=AUCKLAND)


def auckland(org) -> None:
    org.time_zone = AUCKLAND
    db.session.commit()


def test_today_comes_from_the_injected_clock_in_the_organisations_zone(frozen, in_utc, in_auckland):
    assert clock.now() == NOW
    assert in_utc.today() == date(2026, 3, 8)
    assert in_auckland.today() == date(2026, 3, 9)
    assert clock.local_today(AUCKLAND) == date(2026, 3, 9)
    assert in_auckland.today(datetime(2026, 3, 8, 10, 0, tzinfo=UTC)) == date(2026, 3, 8)  # 23:00 there


def test_without_an_injected_clock_now_is_the_real_utc_time(app):
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)


def test_relative_date_filters_on_a_date_column_use_the_organisations_day(frozen, org, in_utc, in_auckland):
    pipeline = factories.make_pipeline(org)
    factories.make_deal(org, pipeline=pipeline, name="utc-today", expected_close_date=date(2026, 3, 8))
    factories.make_deal(org, pipeline=pipeline, name="local-today", expected_close_date=date(2026, 3, 9))

    def names(actor: Actor, raw: str) -> set[str]:
        spec = parse_filter(MultiDict([("f", raw)]), DEAL.filters)
        return {getattr(row, "deal", row).name for row in DealService(actor).list_page(filter_spec=spec).items}

    assert names(in_auckland, "expectedClose.inRange.today") == {"local-today"}
    assert names(in_utc, "expectedClose.inRange.today") == {"utc-today"}
    assert names(in_auckland, "expectedClose.inRange.yesterday") == {"utc-today"}
    assert names(in_auckland, "expectedClose.inRange.thisWeek") == {"local-today"}  # the week of Monday 9
    assert names(in_utc, "expectedClose.inRange.thisWeek") == {"utc-today"}  # the week of Monday 2


def test_relative_and_calendar_dates_on_a_datetime_column_use_the_organisations_midnight(
    frozen, org, in_utc, in_auckland
):
    factories.make_contact(org, first_name="Sunday-late", created_at=datetime(2026, 3, 8, 10, 0, tzinfo=UTC))
    factories.make_contact(org, first_name="Monday-early", created_at=datetime(2026, 3, 8, 12, 0, tzinfo=UTC))

    def names(actor: Actor, raw: str) -> set[str]:
        spec = parse_filter(MultiDict([("f", raw)]), CONTACT.filters)
        return {row.contact.first_name for row in ContactService(actor).list_page(filter_spec=spec).items}

    # In Auckland the first was created on Sunday 23:00, the second on Monday 01:00.
    assert names(in_auckland, "created.inRange.today") == {"Monday-early"}
    assert names(in_auckland, "created.inRange.thisWeek") == {"Monday-early"}
    assert names(in_auckland, "created.inRange.lastWeek") == {"Sunday-late"}
    assert names(in_auckland, "created.onDate.2026-03-09") == {"Monday-early"}
    assert names(in_auckland, "created.before.2026-03-09") == {"Sunday-late"}
    assert names(in_auckland, "created.after.2026-03-08") == {"Monday-early"}
    # In UTC both were created on Sunday 8 March, today.
    assert names(in_utc, "created.inRange.today") == {"Sunday-late", "Monday-early"}
    assert names(in_utc, "created.inRange.thisWeek") == {"Sunday-late", "Monday-early"}
    assert names(in_utc, "created.onDate.2026-03-09") == set()


def test_the_activities_list_filters_and_marks_overdue_by_the_organisations_clock(frozen, client, login, org):
    auckland(org)
    factories.make_activity(org, subject="Due-sunday-utc", due_at=datetime(2026, 3, 8, 9, 0, tzinfo=UTC))
    factories.make_activity(org, subject="Due-monday-local", due_at=datetime(2026, 3, 8, 21, 0, tzinfo=UTC))
    login("admin")
    body = client.get("/activities?view=all&f=due.inRange.today").get_data(as_text=True)
    assert "Due-monday-local" in body and "Due-sunday-utc" not in body
    body = client.get("/activities?view=today").get_data(as_text=True)
    assert "Due-monday-local" in body and "Due-sunday-utc" not in body
    body = client.get("/activities?view=overdue").get_data(as_text=True)
    assert "Due-sunday-utc" in body and "Due-monday-local" not in body  # 09:00 UTC is past NOW, 21:00 is not
    assert "(overdue)" in body


def test_the_board_marks_deals_overdue_by_the_organisations_day(frozen, client, login, org, in_utc, in_auckland):
    pipeline = factories.make_pipeline(org, is_default=True)
    factories.make_deal(org, pipeline=pipeline, name="Closing Sunday", expected_close_date=date(2026, 3, 8))
    assert BoardService(in_auckland).board(pipeline_id=pipeline.id).today == date(2026, 3, 9)
    assert BoardService(in_utc).board(pipeline_id=pipeline.id).today == date(2026, 3, 8)
    login("admin")
    assert "data-overdue" not in client.get("/deals/board").get_data(as_text=True)  # today in UTC
    auckland(org)
    assert "data-overdue" in client.get("/deals/board").get_data(as_text=True)  # yesterday in Auckland


def test_the_dashboard_counts_months_from_the_organisations_today(app, monkeypatch, in_utc, in_auckland):
    monkeypatch.setitem(app.config, "CLOCK", lambda: datetime(2026, 3, 31, 20, 0, tzinfo=UTC))  # 1 April there
    assert DashboardService(in_auckland).today == date(2026, 4, 1)
    assert DashboardService(in_utc).today == date(2026, 3, 31)
    months = DashboardService(in_auckland).won_lost(DashboardService(in_auckland).resolve_scope("all"))
    assert months[-1].month == date(2026, 4, 1)


def test_the_dashboard_page_and_csv_name_use_the_organisations_day(frozen, client, login, org):
    auckland(org)
    factories.make_contact(org)
    login("admin")
    assert client.get("/").status_code == 200
    response = client.get("/contacts/export.csv")
    assert 'filename="contacts-2026-03-09.csv"' in response.headers["Content-Disposition"]

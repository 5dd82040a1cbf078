"""Notifications: each kind once, for the right user, never for the actor; reminders at the right minute
across a daylight-saving change (the clock injected); the bell, the list, mark read, the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Notification
from crm_web.services.activities import ActivityService
from crm_web.services.base import Actor
from crm_web.services.board import BoardService
from crm_web.services.contacts import ContactService
from crm_web.services.deals import DealService
from crm_web.services.leads import LeadService
from crm_web.services.notifications import NotificationService
from tests import factories
from tests.conftest import LOGIN_STATEMENTS


def _notes(user=None) -> list[tuple[str, str]]:
    """(recipient's name, kind) of every notification, in creation order."""
    db.session.expire_all()
    rows = db.session.execute(select(Notification).order_by(Notification.created_at, Notification.kind)).scalars()
    return [(note.user_id == user.id if user else note.user_id, note.kind) for note in rows]


def _kinds_for(user) -> list[str]:
    db.session.expire_all()
    return sorted(db.session.scalars(select(Notification.kind).where(Notification.user_id == user.id)))


@pytest.fixture
def team(org, users):
    manager, sales = users["manager"], users["sales"]
    sales.name = "Max Power"
    db.session.commit()
    return manager, sales, Actor.of(manager), Actor.of(sales)


@pytest.fixture
def pipeline_stages(org):
    pipeline = factories.make_pipeline(org, is_default=True)
    return factories.stages_of(pipeline)


def test_assignment_of_every_kind_notifies_the_new_owner_once_and_never_the_actor(team, org, pipeline_stages):
    manager, sales, as_manager, as_sales = team
    deal = DealService(as_manager).create(name="Big", stage_id=pipeline_stages[0].id, owner_id=sales.id)
    lead = LeadService(as_manager).create(first_name="Ann", last_name="Lee", owner_id=sales.id)
    contact = ContactService(as_manager).create(first_name="Bo", last_name="Ek", email="bo@x.test")
    ContactService(as_manager).update(contact.id, owner_id=sales.id)
    ActivityService(as_manager).create(subject="Call", owner_id=sales.id)
    assert _kinds_for(sales) == ["assigned"] * 4
    assert _kinds_for(manager) == []
    # Their own records, or a change that leaves the owner alone: nothing.
    DealService(as_sales).create(name="Mine", stage_id=pipeline_stages[0].id)
    DealService(as_manager).update(deal.id, name="Bigger")
    LeadService(as_sales).update(lead.id, company_name="Lee Ltd")
    assert _kinds_for(sales) == ["assigned"] * 4
    note = db.session.scalar(select(Notification).where(Notification.entity_id == deal.id))
    assert note.actor_id == manager.id and note.label == "Big" and manager.name in note.detail


def test_a_deal_moved_won_or_lost_by_someone_else_notifies_its_owner(team, org, pipeline_stages):
    manager, sales, as_manager, as_sales = team
    won = next(s for s in pipeline_stages if s.is_won)
    lost = next(s for s in pipeline_stages if s.is_lost)
    deal = factories.make_deal(org, stage=pipeline_stages[0], owner_id=sales.id)
    board = BoardService(as_manager)
    board.move(deal.id, stage_id=pipeline_stages[1].id)
    assert _kinds_for(sales) == ["deal_moved"]
    board.move(deal.id, stage_id=won.id)
    assert _kinds_for(sales) == ["deal_moved", "deal_won"]
    board.move(deal.id, stage_id=lost.id, lost_reason="Price")
    assert _kinds_for(sales) == ["deal_lost", "deal_moved", "deal_won"]
    # The owner's own moves, and a reorder within a column by someone else: nothing more.
    BoardService(as_sales).move(deal.id, stage_id=pipeline_stages[0].id)
    other = factories.make_deal(org, stage=pipeline_stages[0], owner_id=sales.id)
    board.move(other.id, stage_id=pipeline_stages[0].id, after_id=deal.id)
    assert _kinds_for(sales) == ["deal_lost", "deal_moved", "deal_won"]
    assert _kinds_for(manager) == []
    # The form's stage change too.
    DealService(as_manager).update(deal.id, stage_id=pipeline_stages[2].id)
    assert _kinds_for(sales).count("deal_moved") == 2


def test_a_mention_in_an_activity_note_notifies_the_named_user_not_the_author(team, org, users):
    manager, sales, as_manager, _ = team
    admin = users["admin"]
    ActivityService(as_manager).create(
        subject="Prep", owner_id=manager.id, description=f"@Max please call, cc @{manager.name} and @{admin.name}"
    )
    assert _kinds_for(sales) == ["mentioned"]
    assert _kinds_for(admin) == ["mentioned"]
    assert _kinds_for(manager) == []
    activity = db.session.scalar(select(Notification.entity_id).where(Notification.user_id == sales.id))
    # Editing other fields does not mention again; a new mention in the note does.
    ActivityService(as_manager).update(activity, subject="Prep call")
    assert _kinds_for(sales) == ["mentioned"]
    ActivityService(as_manager).update(activity, description="@nobody here, @Max again")
    assert _kinds_for(sales) == ["mentioned", "mentioned"]


def test_reminders_fall_due_at_the_right_minute_across_a_daylight_saving_change(app, team, org, monkeypatch):
    """Berlin springs forward on 29 March 2026 at 01:00 UTC (02:00 -> 03:00 local). An activity due at
    03:10 local (01:10 UTC) reminds 15 minutes before, at 00:55 UTC (01:55 local, before the change),
    once; it is overdue at 01:10 UTC, once."""
    manager, sales, as_manager, _ = team
    org.time_zone = "Europe/Berlin"
    db.session.commit()
    due = datetime(2026, 3, 29, 1, 10, tzinfo=UTC)
    activity = factories.make_activity(org, subject="Call Ann", owner_id=sales.id, due_at=due)
    factories.make_activity(org, subject="Not mine", owner_id=manager.id, due_at=due)
    as_sales = Actor(org_id=org.id, user_id=sales.id, name=sales.name, time_zone="Europe/Berlin")
    moment = {"now": datetime(2026, 3, 29, 0, 54, 59, tzinfo=UTC)}
    monkeypatch.setitem(app.config, "CLOCK", lambda: moment["now"])

    def remind():
        return NotificationService(as_sales).remind(sales)

    assert remind() == datetime(2026, 3, 29, 0, 55, tzinfo=UTC)  # when the bell must look again
    assert _kinds_for(sales) == []
    moment["now"] = datetime(2026, 3, 29, 0, 55, tzinfo=UTC)
    assert remind() == due
    moment["now"] += timedelta(minutes=3)
    remind()
    notes = db.session.scalars(select(Notification).where(Notification.user_id == sales.id)).all()
    assert [(n.kind, n.entity_id) for n in notes] == [("due_soon", activity.id)]
    assert notes[0].detail.startswith("Due at 03:10")  # the organisation's local time, after the change
    moment["now"] = due - timedelta(seconds=1)
    remind()
    assert _kinds_for(sales) == ["due_soon"]
    moment["now"] = due
    remind()
    moment["now"] = due + timedelta(minutes=30)
    remind()
    assert _kinds_for(sales) == ["due_soon", "overdue"]
    assert _kinds_for(manager) == []  # the manager's bell never asked
    # Rescheduled: it reminds again for the new time; completed: never.
    ActivityService(as_manager).update(activity.id, due_at=due + timedelta(hours=1))
    moment["now"] = due + timedelta(minutes=50)
    remind()
    assert _kinds_for(sales).count("due_soon") == 2


def test_reminder_minutes_are_per_user_and_muted_kinds_are_not_shown(app, team, org, monkeypatch):
    _, sales, as_manager, as_sales = team
    now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    monkeypatch.setitem(app.config, "CLOCK", lambda: now)
    factories.make_activity(org, subject="Soon", owner_id=sales.id, due_at=now + timedelta(minutes=40))
    service = NotificationService(as_sales)
    service.remind(sales)
    assert _kinds_for(sales) == []
    sales.reminder_minutes = 45
    db.session.commit()
    service.remind(sales)
    assert _kinds_for(sales) == ["due_soon"]
    DealService(as_manager).create(
        name="X", stage_id=factories.stages_of(factories.make_pipeline(org))[0].id, owner_id=sales.id
    )
    assert service.unread_count(sales) == 2
    sales.muted_notifications = "assigned"
    db.session.commit()
    assert service.unread_count(sales) == 1
    assert [n.kind for n in service.page(sales).items] == ["due_soon"]


# --- views ----------------------------------------------------------------------------------


def _many_notes(org, user, count):
    for i in range(count):
        db.session.add(
            Notification(
                org_id=org.id,
                user_id=user.id,
                kind="assigned",
                entity_type="deal",
                entity_id=factories.make_deal(org).id,
                label=f"Deal {i}",
                detail="x",
                actor_name="M",
            )
        )
    db.session.commit()


@pytest.mark.parametrize("count", [1, 30])
def test_notifications_page_statements_constant(client, login, org, users, count_queries, count):
    sales = login("sales")
    _many_notes(org, sales, count)
    with count_queries() as q:
        response = client.get("/notifications")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count("data-kind=") == min(count, 20)
    assert ("Older" in html) == (count > 20)
    # the reminders' select, the page, the unread count
    assert q.count == 3 + LOGIN_STATEMENTS, q


def test_reminders_stored_by_an_earlier_look_are_not_sent_again(client, login, org, count_queries):
    """The bell and the list derive reminders on every look; those already stored are read by key, not
    inserted again to be refused by the unique index (which at a hundred reminders cost more than the page)."""
    sales = login("sales")
    for i in range(3):
        factories.make_activity(
            org, subject=f"Call {i}", owner_id=sales.id, due_at=datetime.now(UTC) - timedelta(hours=i + 1)
        )
    assert client.get("/notifications").status_code == 200
    assert _kinds_for(sales) == ["overdue"] * 3
    with count_queries() as q:
        response = client.get("/notifications")
    assert response.status_code == 200 and response.get_data(as_text=True).count("data-kind=") == 3
    assert not [s for s in q.statements if s.lstrip().upper().startswith("INSERT")], q
    # the reminders' select, the stored keys, the page, the unread count
    assert q.count == 4 + LOGIN_STATEMENTS, q
    # One more falls due: only it is stored.
    factories.make_activity(org, subject="Call 3", owner_id=sales.id, due_at=datetime.now(UTC) - timedelta(minutes=5))
    with count_queries() as q:
        assert client.get("/notifications").status_code == 200
    assert len([s for s in q.statements if s.lstrip().upper().startswith("INSERT")]) == 1, q
    assert _kinds_for(sales) == ["overdue"] * 4


def test_mark_read_open_and_mark_all_read(client, login, org, users):
    sales = login("sales")
    _many_notes(org, sales, 3)
    notes = db.session.scalars(select(Notification).order_by(Notification.label)).all()
    response = client.post("/notifications/open", data={"id": str(notes[0].id)})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/deals/{notes[0].entity_id}")
    client.post("/notifications/read", data={"id": str(notes[1].id)})
    db.session.expire_all()
    assert [n.read_at is not None for n in notes] == [True, True, False]
    assert client.post("/notifications/read-all").status_code == 303
    db.session.expire_all()
    assert all(n.read_at is not None for n in notes)
    # Another user's notification is not theirs to open.
    other = users["manager"]
    _many_notes(org, other, 1)
    theirs = db.session.scalar(select(Notification).where(Notification.user_id == other.id))
    response = client.post("/notifications/open", data={"id": str(theirs.id)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/notifications")
    client.post("/notifications/read", data={"id": str(theirs.id)})
    assert client.post("/notifications/open", data={"id": "junk"}).status_code == 400
    db.session.expire_all()
    assert theirs.read_at is None


def test_the_bell_costs_no_statement_while_nothing_changed(client, login, org, users, count_queries):
    sales = login("sales")
    _many_notes(org, sales, 2)
    response = client.get("/notifications/bell", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "data-bell-count>2<" in html
    stamp = html.split('data-bell-stamp="')[1].split('"')[0]
    with count_queries() as q:
        response = client.get(f"/notifications/bell?s={stamp}")
    assert response.status_code == 204 and q.count == 0, q
    # Someone assigns them a deal: the bell answers with the new count.
    DealService(Actor.of(users["manager"])).create(
        name="New", stage_id=factories.stages_of(factories.make_pipeline(org))[0].id, owner_id=sales.id
    )
    response = client.get(f"/notifications/bell?s={stamp}")
    assert response.status_code == 200 and "data-bell-count>3<" in response.get_data(as_text=True)


def test_a_bell_that_finds_no_new_reminder_leaves_the_users_other_pages_idle(client, login, org):
    """Two pages of one user, an overdue activity: each page's first bell stores the reminder or finds
    it stored; after that each page's stamp stays current (204), else each page's bell would make the
    other's ask again, for ever, on live streams."""
    sales = login("sales")
    factories.make_activity(org, subject="Call Ann", owner_id=sales.id, due_at=datetime.now(UTC) - timedelta(hours=1))

    def bell(held: str = "") -> tuple[int, str]:
        response = client.get(f"/notifications/bell?s={held}", headers={"HX-Request": "true"})
        html = response.get_data(as_text=True)
        return response.status_code, html.split('data-bell-stamp="')[1].split('"')[0] if html else held

    status, first = bell()  # the first page: stores the overdue reminder
    assert status == 200 and _kinds_for(sales) == ["overdue"]
    status, second = bell()  # the second page: finds it stored
    assert status == 200 and second == first
    assert bell(first) == (204, first) and bell(second) == (204, second)


def test_notification_settings_on_the_account_page(client, login, users):
    sales = login("sales")
    page = client.get("/account").get_data(as_text=True)
    assert 'name="reminder_minutes"' in page and 'value="due_soon"' in page
    response = client.post("/account/notifications", data={"reminder_minutes": "30", "kinds": ["due_soon", "overdue"]})
    assert response.status_code == 303
    db.session.expire_all()
    assert sales.reminder_minutes == 30
    assert set(sales.muted_notifications.split(",")) == {"assigned", "deal_moved", "deal_won", "deal_lost", "mentioned"}
    assert client.post("/account/notifications", data={"reminder_minutes": "-5"}).status_code == 422
    assert client.post("/account/notifications", data={"reminder_minutes": "x"}).status_code == 422

"""A contact's last activity stays true through every activity write: form, one-click complete and
reopen, delete and Undo, bulk delete and restore, a move to another contact, trash restore and purge."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Activity, Contact
from crm_web.services.activities import ActivityService
from crm_web.services.trash import TrashRef, TrashService
from tests import factories
from tests.conftest import HX


@pytest.fixture
def admin(users):
    return factories.actor_for(users["admin"])


def last_activity(contact):
    db.session.expire_all()
    return db.session.scalar(
        select(Contact.last_activity_at).where(Contact.id == contact.id).execution_options(include_deleted=True)
    )


def moment(activity_id):
    """When the activity last happened, read back from the database: its completion, else its logging."""
    row = db.session.execute(
        select(Activity.completed_at, Activity.created_at)
        .where(Activity.id == activity_id)
        .execution_options(include_deleted=True)
    ).one()
    return row.completed_at or row.created_at


def test_logging_completing_and_reopening(org, admin):
    contact = factories.make_contact(org)
    service = ActivityService(admin)
    first = service.create(subject="Call", type="call", status="pending", priority="medium", contact_id=contact.id)
    assert last_activity(contact) == moment(first.id)
    second = service.create(subject="Mail", type="email", status="pending", priority="low", contact_id=contact.id)
    assert last_activity(contact) == moment(second.id)
    service.set_completed(first.id, completed=True)
    assert moment(first.id) > moment(second.id)
    assert last_activity(contact) == moment(first.id)
    service.set_completed(first.id, completed=False)
    assert last_activity(contact) == moment(second.id)


def test_delete_undo_and_bulk(org, admin):
    contact = factories.make_contact(org)
    service = ActivityService(admin)
    only = service.create(subject="Call", type="call", status="pending", priority="medium", contact_id=contact.id)
    service.delete(only.id)
    assert last_activity(contact) is None
    service.restore(only.id)
    assert last_activity(contact) == moment(only.id)
    assert service.delete_many([only.id]) == [only.id]
    assert last_activity(contact) is None
    assert service.restore_many([only.id]) == [only.id]
    assert last_activity(contact) == moment(only.id)


def test_moving_an_activity_to_another_contact_updates_both(org, admin):
    old, new = factories.make_contact(org), factories.make_contact(org)
    service = ActivityService(admin)
    activity = service.create(subject="Call", type="call", status="pending", priority="medium", contact_id=old.id)
    service.update(activity.id, contact_id=new.id)
    assert last_activity(old) is None
    assert last_activity(new) == moment(activity.id)


def test_trash_restore_and_purge(org, admin):
    contact = factories.make_contact(org)
    service = ActivityService(admin)
    kept = service.create(subject="Kept", type="note", status="pending", priority="low", contact_id=contact.id)
    gone = service.create(subject="Gone", type="call", status="pending", priority="low", contact_id=contact.id)
    service.set_completed(gone.id, completed=True)
    service.delete(gone.id)
    assert last_activity(contact) == moment(kept.id)
    trash = TrashService(admin)
    trash.restore([TrashRef("activity", gone.id)])
    assert last_activity(contact) == moment(gone.id)
    service.delete(gone.id)
    trash.purge([TrashRef("activity", gone.id)])
    assert last_activity(contact) == moment(kept.id)
    service.delete(kept.id)
    trash.purge_older_than(days=0)
    assert last_activity(contact) is None


def test_the_form_and_the_buttons_keep_it_true(client, login, org, users):
    login("admin")
    contact = factories.make_contact(org)
    response = client.post(
        "/activities",
        headers=HX,
        data={
            "subject": "Follow up",
            "type": "task",
            "status": "pending",
            "priority": "medium",
            "owner_id": str(users["admin"].id),
            "contact_id": str(contact.id),
        },
    )
    assert response.status_code == 200
    activity = db.session.scalars(select(Activity).where(Activity.contact_id == contact.id)).one()
    assert last_activity(contact) == moment(activity.id)
    assert client.post(f"/activities/{activity.id}/complete", headers=HX).status_code == 200
    assert last_activity(contact) == moment(activity.id) and moment(activity.id) > activity.created_at
    assert client.post(f"/activities/{activity.id}/delete", headers=HX).status_code == 200
    assert last_activity(contact) is None
    assert client.post(f"/activities/{activity.id}/restore", headers=HX).status_code == 200
    assert last_activity(contact) == moment(activity.id)


def test_a_write_without_a_contact_touches_no_contact(org, admin, count_queries):
    service = ActivityService(admin)
    with count_queries() as q:
        service.create(subject="Alone", type="task", status="pending", priority="low")
    assert not any("UPDATE contacts" in statement for statement in q.statements), q


def test_the_demo_seeder_derives_it_from_the_activities(org):
    from sqlalchemy import func

    from crm_web.services import seeding

    seeding.Seeder(org, seed=3).run(companies=3, contacts=12, leads=0, deals=0, activities=20)
    latest = dict(
        db.session.execute(
            select(Activity.contact_id, func.max(func.coalesce(Activity.completed_at, Activity.created_at)))
            .where(Activity.org_id == org.id, Activity.contact_id.is_not(None))
            .group_by(Activity.contact_id)
        ).all()
    )
    stored = dict(
        db.session.execute(select(Contact.id, Contact.last_activity_at).where(Contact.org_id == org.id)).all()
    )
    assert len(stored) == 12 and latest
    assert stored == {contact_id: latest.get(contact_id) for contact_id in stored}

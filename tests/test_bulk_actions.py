"""The bulk actions every list shares (views/generic.py BulkActions, services/base.py): delete, add and
remove a tag, change the owner, and for activities complete and reschedule; each with an Undo that
reverts exactly the rows it changed, scoped to the organisation, refused to sales on others' records."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from crm_web.entities import ENTITIES
from crm_web.errors import BadRequest, NotFound, PermissionDenied
from crm_web.extensions import db
from crm_web.models import Activity, RecordHistory
from crm_web.services.activities import ActivityService
from crm_web.services.companies import CompanyService
from crm_web.services.contacts import ContactService
from crm_web.services.deals import DealService
from crm_web.services.leads import LeadService
from tests import factories
from tests.conftest import HX

SERVICES = {
    "contact": ContactService,
    "company": CompanyService,
    "lead": LeadService,
    "deal": DealService,
    "activity": ActivityService,
}
MAKE = {
    "contact": factories.make_contact,
    "company": factories.make_company,
    "lead": factories.make_lead,
    "deal": factories.make_deal,
    "activity": factories.make_activity,
}
TAGGABLE = ["contact", "company", "lead", "deal"]


def _svc(kind, user):
    return SERVICES[kind](factories.actor_for(user))


def _tag_ids(kind, record_id):
    entity = ENTITIES[kind]
    table = entity.tag_table
    return {row[0] for row in db.session.execute(select(table.c.tag_id).where(table.c[entity.tag_column] == record_id))}


def _undo_vals(html: str) -> dict:
    """The values the toast's Undo button posts."""
    found = re.search(r"btn-undo\" hx-post=\"([^\"]+)\"\s*hx-vals='([^']+)'", html)
    assert found, html[-600:]
    return {"url": found.group(1).replace("&amp;", "&"), "vals": json.loads(found.group(2).replace("&#34;", '"'))}


@pytest.mark.parametrize("kind", TAGGABLE)
def test_add_and_remove_a_tag_touch_only_what_changed(kind, org, other_org, users):
    tag = factories.make_tag(org)
    one, two = MAKE[kind](org), MAKE[kind](org)
    stranger = MAKE[kind](other_org)
    service = _svc(kind, users["admin"])
    assert service.bulk_add_tag([one.id], tag_id=tag.id) == [one.id]
    # already tagged, or another organisation's: not changed (so an Undo would not untag it)
    assert service.bulk_add_tag([one.id, two.id, stranger.id], tag_id=tag.id) == [two.id]
    assert _tag_ids(kind, one.id) == _tag_ids(kind, two.id) == {tag.id} and not _tag_ids(kind, stranger.id)
    assert service.bulk_remove_tag([two.id, stranger.id], tag_id=tag.id) == [two.id]
    assert _tag_ids(kind, two.id) == set() and _tag_ids(kind, one.id) == {tag.id}
    with pytest.raises(NotFound):
        service.bulk_add_tag([one.id], tag_id=factories.make_tag(other_org).id)
    history = db.session.scalars(
        select(RecordHistory.changes).where(RecordHistory.entity_id == two.id).order_by(RecordHistory.created_at)
    ).all()
    assert {"tags": ["", f"+{tag.id}"]} in history and {"tags": [f"-{tag.id}", ""]} in history


def test_activities_have_no_tags(org, users):
    with pytest.raises(NotFound):
        _svc("activity", users["admin"]).bulk_add_tag(
            [factories.make_activity(org).id], tag_id=factories.make_tag(org).id
        )


@pytest.mark.parametrize("kind", list(SERVICES))
def test_change_owner_and_revert_each_row_to_its_own_owner(kind, org, other_org, users):
    admin, manager, sales = users["admin"], users["manager"], users["sales"]
    mine, theirs, already = MAKE[kind](org, owner_id=admin.id), MAKE[kind](org, owner_id=manager.id), MAKE[kind](org)
    model = ENTITIES[kind].model
    db.session.execute(model.__table__.update().where(model.id == already.id).values(owner_id=sales.id))
    db.session.commit()
    version = db.session.get(model, mine.id).version
    stranger = MAKE[kind](other_org)
    service = _svc(kind, admin)
    previous = service.bulk_change_owner([mine.id, theirs.id, already.id, stranger.id], owner_id=sales.id)
    assert previous == {mine.id: admin.id, theirs.id: manager.id}
    db.session.expire_all()
    assert {db.session.get(model, r.id).owner_id for r in (mine, theirs, already)} == {sales.id}
    assert db.session.get(model, mine.id).version == version + 1  # a form opened before is stale
    assert db.session.get(model, stranger.id).owner_id is None
    assert sorted(map(str, service.bulk_revert("owner_id", previous))) == sorted(map(str, previous))
    db.session.expire_all()
    assert db.session.get(model, mine.id).owner_id == admin.id
    assert db.session.get(model, theirs.id).owner_id == manager.id
    assert db.session.get(model, already.id).owner_id == sales.id
    with pytest.raises(NotFound):
        service.bulk_change_owner([mine.id], owner_id=factories.make_user(other_org).id)
    with pytest.raises(NotFound):
        service.bulk_revert("owner_id", {mine.id: factories.make_user(other_org).id})
    with pytest.raises(BadRequest):
        service.bulk_revert("deleted_at", {mine.id: None})  # not a bulk field: never written


@pytest.mark.parametrize("kind", list(SERVICES))
def test_sales_may_not_bulk_change_others_records(kind, org, users):
    sales = users["sales"]
    own, others = MAKE[kind](org, owner_id=sales.id), MAKE[kind](org, owner_id=users["admin"].id)
    service = _svc(kind, sales)
    with pytest.raises(PermissionDenied):
        service.bulk_change_owner([own.id, others.id], owner_id=sales.id)
    with pytest.raises(PermissionDenied):
        service.delete_many([others.id])
    assert service.bulk_change_owner([own.id], owner_id=users["manager"].id) == {own.id: sales.id}


def test_complete_and_reschedule_activities_and_undo(org, users):
    admin = users["admin"]
    contact = factories.make_contact(org)
    due = datetime(2030, 1, 2, 15, 30, tzinfo=UTC)
    open_one = factories.make_activity(org, owner_id=admin.id, contact_id=contact.id, due_at=due)
    done = factories.make_activity(org, owner_id=admin.id, status="completed", completed_at=due)
    no_due = factories.make_activity(org, owner_id=admin.id, due_at=None)
    service = _svc("activity", admin)
    previous = service.bulk_complete([open_one.id, done.id])
    assert previous == {open_one.id: "pending"}
    db.session.expire_all()
    completed = db.session.get(Activity, open_one.id)
    assert completed.status == "completed" and completed.completed_at is not None
    assert db.session.get(Activity, done.id).completed_at.replace(tzinfo=None) == due.replace(tzinfo=None)
    assert db.session.get(type(contact), contact.id).last_activity_at is not None
    service.bulk_revert("status", previous)
    db.session.expire_all()
    reopened = db.session.get(Activity, open_one.id)
    assert reopened.status == "pending" and reopened.completed_at is None
    with pytest.raises(BadRequest):
        service.bulk_revert("status", {open_one.id: "exploded"})
    with pytest.raises(BadRequest):
        service.bulk_revert("status", {open_one.id: None})

    moved = service.bulk_reschedule([open_one.id, no_due.id], day=date(2031, 5, 6))
    assert moved == {open_one.id: moved[open_one.id], no_due.id: None}
    db.session.expire_all()
    assert db.session.get(Activity, open_one.id).due_at.replace(tzinfo=None) == datetime(2031, 5, 6, 15, 30)
    assert db.session.get(Activity, no_due.id).due_at.replace(tzinfo=None) == datetime(2031, 5, 6, 9, 0)
    service.bulk_revert("due_at", moved)
    db.session.expire_all()
    assert db.session.get(Activity, open_one.id).due_at.replace(tzinfo=None) == due.replace(tzinfo=None)
    assert db.session.get(Activity, no_due.id).due_at is None


# --- the views --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TAGGABLE)
def test_every_list_offers_the_same_bulk_actions_with_undo(kind, client, login, org, users):
    entity = ENTITIES[kind]
    tag = factories.make_tag(org, name="Hot")
    records = [MAKE[kind](org, owner_id=users["admin"].id) for _ in range(2)]
    ids = [str(r.id) for r in records]
    login("admin")
    page = client.get(f"/{entity.plural}").get_data(as_text=True)
    for action in ("delete", "tag", "untag", "owner"):
        assert f"/{entity.plural}/bulk/{action}" in page
    tagged = client.post(
        f"/{entity.plural}/bulk/tag?sort=-created_at", data={"ids": ids, "tag_id": str(tag.id)}, headers=HX
    )
    assert tagged.status_code == 200 and f"Tagged 2 {entity.plural}." in tagged.text
    undo = _undo_vals(tagged.text)
    assert undo["url"] == f"/{entity.plural}/bulk/untag?sort=-created_at"
    assert undo["vals"]["tag_id"] == str(tag.id) and sorted(undo["vals"]["ids"]) == sorted(ids)
    undone = client.post(undo["url"], data=undo["vals"], headers=HX)
    assert undone.status_code == 200 and f"Removed the tag from 2 {entity.plural}." in undone.text
    assert all(not _tag_ids(kind, r.id) for r in records)
    again = client.post(f"/{entity.plural}/bulk/untag", data={"ids": ids, "tag_id": str(tag.id)}, headers=HX)
    assert "Nothing changed" in again.text and "btn-undo" not in again.text

    owned = client.post(
        f"/{entity.plural}/bulk/owner", data={"ids": ids, "owner_id": str(users["sales"].id)}, headers=HX
    )
    assert owned.status_code == 200 and f"Reassigned 2 {entity.plural}." in owned.text
    undo = _undo_vals(owned.text)
    assert undo["vals"]["field"] == "owner_id" and undo["vals"]["previous"] == [str(users["admin"].id)] * 2
    reverted = client.post(undo["url"], data=undo["vals"], headers=HX)
    assert reverted.status_code == 200 and f"Undone for 2 {entity.plural}." in reverted.text
    db.session.expire_all()
    assert {db.session.get(entity.model, r.id).owner_id for r in records} == {users["admin"].id}

    bad = [
        client.post(f"/{entity.plural}/bulk/tag", data={"ids": ids, "tag_id": "junk"}, headers=HX),
        client.post(f"/{entity.plural}/bulk/owner", data={"ids": ids}, headers=HX),
        client.post(
            f"/{entity.plural}/bulk/revert", data={"field": "owner_id", "ids": ids, "previous": ["x"]}, headers=HX
        ),
        client.post(
            f"/{entity.plural}/bulk/revert",
            data={"field": "owner_id", "ids": ids, "previous": ["no", "no"]},
            headers=HX,
        ),
        client.post(
            f"/{entity.plural}/bulk/revert", data={"field": "name", "ids": ids, "previous": ["", ""]}, headers=HX
        ),
    ]
    assert [r.status_code for r in bad] == [400] * 5


def test_a_sales_users_reassignment_away_has_no_undo(client, login, org, users):
    sales = login("sales")
    lead = factories.make_lead(org, owner_id=sales.id)
    response = client.post(
        "/leads/bulk/owner", data={"ids": [str(lead.id)], "owner_id": str(users["admin"].id)}, headers=HX
    )
    assert response.status_code == 200 and "Reassigned 1 lead." in response.text and "btn-undo" not in response.text
    refused = client.post("/leads/bulk/owner", data={"ids": [str(lead.id)], "owner_id": str(sales.id)}, headers=HX)
    assert refused.status_code == 403


def test_activities_list_bulk_complete_reschedule_delete(client, login, org, users, count_queries):
    admin = login("admin")
    activities = [factories.make_activity(org, owner_id=admin.id, subject=f"Call {i}", due_at=None) for i in range(2)]
    ids = [str(a.id) for a in activities]
    page = client.get("/activities?view=all").get_data(as_text=True)
    for action in ("delete", "owner", "complete", "reschedule"):
        assert f"/activities/bulk/{action}" in page
    assert "/activities/bulk/tag" not in page and 'name="ids"' in page

    with count_queries() as completing:
        done = client.post("/activities/bulk/complete?view=all", data={"ids": ids}, headers=HX)
    assert done.status_code == 200 and "Completed 2 activities." in done.text and 'id="activity-table"' in done.text
    undo = _undo_vals(done.text)
    assert undo["vals"]["previous"] == ["pending", "pending"]
    assert client.post(undo["url"], data=undo["vals"], headers=HX).status_code == 200
    db.session.expire_all()
    assert {db.session.get(Activity, a.id).status for a in activities} == {"pending"}

    moved = client.post("/activities/bulk/reschedule?view=all", data={"ids": ids, "due_date": "2031-05-06"}, headers=HX)
    assert moved.status_code == 200 and "Rescheduled 2 activities." in moved.text
    assert (
        client.post("/activities/bulk/reschedule", data={"ids": ids, "due_date": "soon"}, headers=HX).status_code == 400
    )
    undo = _undo_vals(moved.text)
    assert client.post(undo["url"], data=undo["vals"], headers=HX).status_code == 200
    db.session.expire_all()
    assert {db.session.get(Activity, a.id).due_at for a in activities} == {None}

    deleted = client.post("/activities/bulk/delete?view=all", data={"ids": ids}, headers=HX)
    assert "Deleted 2 activities." in deleted.text
    undo = _undo_vals(deleted.text)
    assert "Restored 2 activities." in client.post(undo["url"], data=undo["vals"], headers=HX).text

    more = [factories.make_activity(org, owner_id=admin.id) for _ in range(10)]
    with count_queries() as many:
        client.post("/activities/bulk/complete?view=all", data={"ids": ids + [str(a.id) for a in more]}, headers=HX)
    assert many.count == completing.count  # constant in the number of selected rows


def test_sales_sees_no_selection_or_actions_on_others_activities(client, login, org, users):
    sales = login("sales")
    factories.make_activity(org, owner_id=users["admin"].id, subject="Admin call")
    own = factories.make_activity(org, owner_id=sales.id, subject="My call")
    page = client.get("/activities?view=all").get_data(as_text=True)
    rows = {}
    for row in re.findall(r'<tr id="activity-.*?</tr>', page, re.S):
        for subject in ("Admin call", "My call"):
            if subject in row:
                rows[subject] = row
    assert 'name="ids"' in rows["My call"] and f"/activities/{own.id}/edit" in rows["My call"]
    assert (
        'name="ids"' not in rows["Admin call"]
        and "/edit" not in rows["Admin call"]
        and "/complete" not in rows["Admin call"]
    )

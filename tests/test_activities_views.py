"""Activity pages: list and fragments, budgets, the reusable form, one-click complete, delete + Undo."""

from __future__ import annotations

import uuid

import pytest

from crm_web.extensions import db
from crm_web.models import Activity
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


@pytest.fixture
def mine(org, users, login):
    user = login("sales")
    contact = factories.make_contact(org)
    activity = factories.make_activity(org, owner_id=user.id, contact_id=contact.id, subject="Call Ada")
    return {"user": user, "contact": contact, "activity": activity}


def test_list_page_and_fragment(client, mine):
    page = client.get("/activities")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="activity-table"' in html and "Call Ada" in html
    assert "HX-Request" in page.headers["Vary"]
    fragment = client.get("/activities?view=all", headers=HX)
    body = fragment.get_data(as_text=True)
    assert 'id="activity-table"' in body and "<html" not in body and "Call Ada" in body


def test_an_empty_activities_list_says_how_to_fill_it(client, org, login):
    login("sales")
    body = client.get("/activities").get_data(as_text=True)
    assert "No activities yet" in body and 'href="/activities/new"' in body
    factories.make_activity(org, subject="Someone else's call")
    body = client.get("/activities?view=overdue", headers=HX).get_data(as_text=True)
    assert "No activities here" in body and "Show all activities" in body and "No activities yet" not in body
    body = client.get("/activities?view=all&q=nothing-like-this", headers=HX).get_data(as_text=True)
    assert "No activities here" in body


@pytest.mark.parametrize("query", ["view=later", "page=abc", "per_page=1000", "scope=team", "f=nope.equals.1"])
def test_bad_list_params_are_4xx(client, mine, query):
    assert client.get(f"/activities?{query}").status_code in (400, 422)


def test_list_budget_is_constant(client, org, mine, count_queries):
    with count_queries() as one:
        assert client.get("/activities?view=all", headers=HX).status_code == 200
    company = factories.make_company(org)
    for i in range(25):
        factories.make_activity(
            org, owner_id=mine["user"].id, contact_id=mine["contact"].id, company_id=company.id, subject=f"Bulk {i}"
        )
    with count_queries() as many:
        assert client.get("/activities?view=all&per_page=50", headers=HX).status_code == 200
    assert one.count == many.count == LOGIN_STATEMENTS + 3, many  # count, rows, owner choices for the builder


def test_new_form_for_a_record(client, mine):
    response = client.get(f"/activities/new?contact={mine['contact'].id}", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="activity-form"' in body and "<html" not in body
    assert f'value="{mine["contact"].id}"' in body and mine["contact"].full_name in body
    assert client.get("/activities/new").status_code == 200


def test_new_form_rejects_bad_and_foreign_ids(client, mine, other_org):
    assert client.get("/activities/new?contact=nope").status_code == 400
    foreign = factories.make_contact(other_org)
    assert client.get(f"/activities/new?contact={foreign.id}").status_code == 404


def test_create_plain_form_redirects(client, mine):
    response = client.post(
        "/activities",
        data={
            "subject": "Send offer",
            "type": "email",
            "status": "pending",
            "priority": "high",
            "due_date": "2026-12-01",
            "due_time": "14:30",
            "owner_id": str(mine["user"].id),
        },
    )
    assert response.status_code == 303 and response.headers["Location"] == "/activities"
    activity = db.session.query(Activity).filter_by(subject="Send offer").one()
    assert activity.due_at.isoformat() == "2026-12-01T14:30:00+00:00" and activity.priority == "high"


def test_create_from_a_record_with_htmx(client, mine):
    response = client.post(
        "/activities",
        headers=HX,
        data={
            "subject": "Follow up",
            "type": "task",
            "status": "pending",
            "priority": "medium",
            "owner_id": str(mine["user"].id),
            "contact_id": str(mine["contact"].id),
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "activities-changed" in response.headers["HX-Trigger"]
    assert 'id="activity-form"' in body and "hx-swap-oob" in body and "Follow up" in body
    assert db.session.query(Activity).filter_by(subject="Follow up").one().contact_id == mine["contact"].id


def test_create_errors_render_inline_with_422_and_foreign_links_404(client, mine, other_org):
    response = client.post(
        "/activities",
        headers=HX,
        data={"subject": "", "type": "task", "status": "pending", "priority": "medium", "owner_id": ""},
    )
    assert response.status_code == 422 and 'class="field-error"' in response.get_data(as_text=True)
    foreign = factories.make_contact(other_org)
    response = client.post(
        "/activities",
        headers=HX,
        data={
            "subject": "x",
            "type": "task",
            "status": "pending",
            "priority": "medium",
            "owner_id": "",
            "contact_id": str(foreign.id),
        },
    )
    assert response.status_code == 404  # another org's record: never a leak


def test_csrf_is_enforced(client, mine):
    assert client.post("/activities", data={"subject": "x"}, csrf=False).status_code == 400
    assert client.post(f"/activities/{mine['activity'].id}/complete", headers=HX, csrf=False).status_code == 400


def test_edit_and_update(client, mine):
    activity = mine["activity"]
    page = client.get(f"/activities/{activity.id}/edit")
    assert page.status_code == 200 and "Call Ada" in page.get_data(as_text=True)
    response = client.post(
        f"/activities/{activity.id}",
        data={
            "subject": "Call Ada again",
            "type": "call",
            "status": "in_progress",
            "priority": "urgent",
            "owner_id": str(mine["user"].id),
            "contact_id": str(mine["contact"].id),
        },
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Activity, activity.id).subject == "Call Ada again"


def test_complete_and_reopen_rerender_the_row_with_a_toast(client, mine):
    activity = mine["activity"]
    response = client.post(f"/activities/{activity.id}/complete", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="activity-{activity.id}"' in body and "badge-completed" in body
    assert "Completed" in body and "hx-swap-oob" in body and "<html" not in body
    response = client.post(f"/activities/{activity.id}/reopen", headers=HX)
    assert "badge-pending" in response.get_data(as_text=True)


def test_delete_then_undo(client, mine):
    activity = mine["activity"]
    response = client.post(f"/activities/{activity.id}/delete", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "row-deleted" in body
    assert f"/activities/{activity.id}/restore" in body and "Undo" in body
    assert client.get("/activities?view=all").get_data(as_text=True).count("Call Ada") == 0
    response = client.post(f"/activities/{activity.id}/restore", headers=HX)
    assert response.status_code == 200 and "badge-pending" in response.get_data(as_text=True)


def test_plain_posts_redirect(client, mine):
    assert client.post(f"/activities/{mine['activity'].id}/complete").status_code == 303


def test_foreign_and_junk_ids(client, mine, other_org):
    foreign = factories.make_activity(other_org)
    for path in (f"/activities/{foreign.id}/edit", f"/activities/{uuid.uuid4()}/edit", "/activities/junk/edit"):
        assert client.get(path).status_code == 404
    assert client.post(f"/activities/{foreign.id}/complete", headers=HX).status_code == 404
    assert client.post(f"/activities/{foreign.id}/delete", headers=HX).status_code == 404


def test_sales_cannot_complete_others(client, org, users, mine):
    theirs = factories.make_activity(org, owner_id=users["manager"].id)
    assert client.post(f"/activities/{theirs.id}/complete", headers=HX).status_code == 403


def test_timeline_fragment(client, mine, count_queries):
    with count_queries() as queries:
        response = client.get(f"/activities/timeline?contact={mine['contact'].id}", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="activity-timeline"' in body and "Call Ada" in body
    assert queries.count == LOGIN_STATEMENTS + 1
    assert client.get("/activities/timeline").status_code == 400
    assert client.get("/activities/timeline?deal=junk").status_code == 400


def test_filter_builder_on_the_list(client, org, mine):
    factories.make_activity(org, owner_id=mine["user"].id, subject="Demo meeting", type="meeting")
    response = client.get("/activities?view=all&f=type.equals.meeting", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Demo meeting" in body and "Call Ada" not in body
    assert "view=all" in response.headers["HX-Push-Url"] and "f=type.equals.meeting" in response.headers["HX-Push-Url"]
    page = client.get("/activities?view=all&f=type.equals.meeting").get_data(as_text=True)
    assert 'id="filter-builder"' in page and "filter-builder.js" in page
    bad = client.get("/activities?f=type.equals.telegram", headers=HX)
    assert bad.status_code == 422 and bad.headers["HX-Retarget"] == "#filter-builder"

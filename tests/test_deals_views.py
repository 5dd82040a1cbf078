"""Deal pages over HTTP: list (filter, sort, pages, CSV), detail, forms, won/lost/reopen, delete + undo."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Deal
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


@pytest.fixture
def stages(org):
    return factories.stages_of(factories.make_pipeline(org))


def fresh(deal_id):
    return db.session.get(Deal, deal_id, populate_existing=True)


@pytest.mark.parametrize("rows", [1, 60])
def test_list_page_budget(client, login, org, stages, count_queries, rows):
    login("manager")
    tag = factories.make_tag(org)
    for i in range(rows):
        factories.make_deal(org, stage=stages[i % 3], name=f"Deal {i}", tags=[tag])
    client.get("/deals")  # warm the pipeline cache
    with count_queries() as q:
        response = client.get("/deals?per_page=50")
    assert response.status_code == 200
    # count, rows (relations joined), tags, filter choices (owners and tags in one UNION ALL)
    assert q.count == 4 + LOGIN_STATEMENTS, q


def test_list_fragment_filter_and_sort(client, login, org, stages):
    login("manager")
    factories.make_deal(org, stage=stages[0], name="Alpha", value=Decimal("10"))
    factories.make_deal(org, stage=stages[0], name="Beta", value=Decimal("999"))
    response = client.get("/deals?f=value.greaterThan.100", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="deal-table"' in html and "<html" not in html
    assert "Beta" in html and "Alpha" not in html
    assert "HX-Request" in response.headers["Vary"]
    html = client.get("/deals?sort=-value").get_data(as_text=True)
    assert html.index("Beta") < html.index("Alpha")
    assert client.get("/deals?sort=bogus").status_code in (400, 422)
    assert client.get("/deals?page=abc").status_code == 400


def test_csv_export(client, login, org, stages):
    login("sales")
    factories.make_deal(org, stage=stages[0], name="=HYPERLINK()", value=Decimal("5"))
    response = client.get("/deals/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    body = response.get_data(as_text=True)
    # The shared CSV writer starts with a BOM so Excel reads UTF-8, like every other export.
    assert body.startswith("\ufeffName,Value") and "'=HYPERLINK()" in body


def test_detail_and_other_org(client, login, org, other_org, stages):
    login("sales")
    deal = factories.make_deal(org, stage=stages[1], name="Visible")
    response = client.get(f"/deals/{deal.id}")
    assert response.status_code == 200 and "Visible" in response.get_data(as_text=True)
    foreign = factories.make_deal(other_org)
    assert client.get(f"/deals/{foreign.id}").status_code == 404
    assert client.get("/deals/not-a-uuid").status_code == 404


def test_detail_budget_is_the_same_for_few_or_many_activities(client, login, org, stages, count_queries):
    login("manager")
    counts = []
    for n in (1, 12):
        deal = factories.make_deal(org, stage=stages[1])
        for _ in range(n):
            factories.make_activity(org, deal_id=deal.id)
        client.get(f"/deals/{deal.id}")  # the pipelines are cached from the first view on
        with count_queries() as q:
            html = client.get(f"/deals/{deal.id}").get_data(as_text=True)
        assert html.count('class="timeline-item') == n
        counts.append(q.count)
    # the deal with its relations, its tags, its history, its activity timeline (with the names of
    # what each activity links to)
    assert counts[0] == counts[1] <= 4 + LOGIN_STATEMENTS


def test_detail_shows_the_timeline_and_its_cards_refresh_without_it(client, login, org, stages, count_queries):
    """The page reads the deal's activity timeline with it; the summary and history cards that refresh
    after a change do not pay for it."""
    login("manager")
    deal = factories.make_deal(org, stage=stages[1], name="Timed")
    factories.make_activity(org, deal_id=deal.id, subject="Demo call")
    with count_queries() as page:
        html = client.get(f"/deals/{deal.id}").get_data(as_text=True)
    assert "Demo call" in html[html.index('id="activity-timeline"') :] and 'hx-trigger="load"' not in html
    with count_queries() as history:
        card = client.get(f"/deals/{deal.id}/history", headers=HX).get_data(as_text=True)
    assert 'id="deal-history"' in card and "Demo call" not in card

    def reads_activities(statements):
        return [s for s in statements if "FROM activities" in s]

    assert len(reads_activities(page.statements)) == 1 and reads_activities(history.statements) == []


def test_create_and_edit(client, login, org, stages, users):
    login("manager")
    assert client.get("/deals/new").status_code == 200
    response = client.post("/deals", data={"name": "", "stage_id": str(stages[0].id), "value": "5"}, headers=HX)
    assert response.status_code == 422 and 'id="deal-form"' in response.get_data(as_text=True)
    response = client.post("/deals", data={"name": "Fresh", "stage_id": str(stages[3].id), "value": "-5"})
    assert response.status_code == 422
    response = client.post(
        "/deals",
        data={
            "name": "Fresh",
            "stage_id": str(stages[3].id),
            "value": "250",
            "owner_id": str(users["sales"].id),
            "currency": "USD",
        },
    )
    assert response.status_code == 303
    deal = db.session.query(Deal).filter_by(org_id=org.id, name="Fresh").one()
    assert deal.status == "won" and deal.owner_id == users["sales"].id
    assert client.get(f"/deals/{deal.id}/edit").status_code == 200
    response = client.post(
        f"/deals/{deal.id}",
        data={"name": "Fresh 2", "stage_id": str(stages[1].id), "value": "250", "currency": "USD"},
        headers=HX,
    )
    assert response.status_code == 204 and response.headers["HX-Location"]
    deal = fresh(deal.id)
    assert deal.name == "Fresh 2" and deal.status == "open" and deal.closed_at is None
    response = client.post("/deals", data={"name": "X", "stage_id": str(uuid.uuid4())})
    assert response.status_code == 422


def test_won_lost_reopen(client, login, org, stages):
    login("manager")
    deal = factories.make_deal(org, stage=stages[0])
    response = client.post(f"/deals/{deal.id}/won", headers=HX)
    assert response.status_code == 200 and 'id="deal-summary"' in response.get_data(as_text=True)
    assert fresh(deal.id).status == "won"
    client.post(f"/deals/{deal.id}/lost", data={"lost_reason": "Budget"}, headers=HX)
    assert fresh(deal.id).status == "lost" and fresh(deal.id).lost_reason == "Budget"
    client.post(f"/deals/{deal.id}/reopen", headers=HX)
    assert fresh(deal.id).status == "open"
    assert client.post(f"/deals/{deal.id}/won", csrf=False).status_code == 400


def test_delete_with_undo(client, login, org, stages, users):
    login("manager")
    deal = factories.make_deal(org, stage=stages[0], name="Trashable")
    response = client.post(f"/deals/{deal.id}/delete", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "in the trash" in html
    assert f"/deals/{deal.id}/restore" in html and "Undo" in html
    trashed = select(Deal.deleted_at).where(Deal.id == deal.id).execution_options(include_deleted=True)
    assert db.session.execute(trashed).scalar_one() is not None  # in the trash, not gone
    response = client.post(f"/deals/{deal.id}/restore", headers=HX)
    assert response.status_code == 200 and "Trashable" in response.get_data(as_text=True)
    login("sales")
    owned = factories.make_deal(org, stage=stages[0], owner_id=users["admin"].id)
    assert client.post(f"/deals/{owned.id}/delete", headers=HX).status_code == 403

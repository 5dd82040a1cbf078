"""The features working together: Undo for every delete (deal list, kanban card, timeline),
detail pages that link to each other (timeline and history panels, deleted links), and the
deals-changed / activities-changed events the dashboard panels refresh on."""

from __future__ import annotations

import json

import pytest

from crm_web.extensions import db
from crm_web.models import Activity, Deal
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


@pytest.fixture
def stages(org):
    return factories.stages_of(factories.make_pipeline(org))


def is_deleted(model, row_id) -> bool:
    row = db.session.execute(
        db.select(model.deleted_at).where(model.id == row_id).execution_options(include_deleted=True)
    ).scalar_one()
    return row is not None


def events(response) -> dict:
    return json.loads(response.headers.get("HX-Trigger") or "{}")


# --- deal list: row and bulk delete with one Undo --------------------------------------------------


def test_deal_list_rows_have_selection_and_delete(client, login, org, stages):
    login("manager")
    deal = factories.make_deal(org, stage=stages[0], name="Listed")
    html = client.get("/deals").get_data(as_text=True)
    assert "data-bulk-bar" in html and f'value="{deal.id}"' in html and "/deals/bulk/delete" in html
    assert 'aria-label="Delete Listed"' in html


def test_deal_bulk_delete_and_undo_restores_all(client, login, org, stages):
    login("manager")
    deals = [factories.make_deal(org, stage=stages[0], name=f"Bulk {i}") for i in range(3)]
    keep = factories.make_deal(org, stage=stages[0], name="Kept")
    ids = [str(d.id) for d in deals]
    response = client.post("/deals/bulk/delete?sort=name", data={"ids": ids}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="deal-table"' in html and "<html" not in html
    assert "Deleted 3 deals." in html and "/deals/bulk/restore?sort=name" in html and 'hx-target="#deal-table"' in html
    assert all(i in html for i in ids)  # the Undo posts the ids back
    assert "Bulk 0" not in html.split("toasts")[0] and "Kept" in html
    assert "deals-changed" in events(response)
    assert all(is_deleted(Deal, d.id) for d in deals) and not is_deleted(Deal, keep.id)
    response = client.post("/deals/bulk/restore?sort=name", data={"ids": ids}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Restored 3 deals." in html and "Bulk 0" in html
    assert "deals-changed" in events(response)
    assert not any(is_deleted(Deal, d.id) for d in deals)


@pytest.mark.parametrize("rows", [1, 30])
def test_deal_bulk_delete_budget(client, login, org, stages, count_queries, rows):
    login("manager")
    deals = [factories.make_deal(org, stage=stages[0]) for _ in range(rows)]
    client.get("/deals")  # warm the pipeline cache
    with count_queries() as q:
        response = client.post("/deals/bulk/delete", data={"ids": [str(d.id) for d in deals]}, headers=HX)
    assert response.status_code == 200
    # select + update + history insert, then the table block (count, rows, tags, filter choices)
    assert q.count <= 8 + LOGIN_STATEMENTS, q


def test_deal_bulk_delete_rules(client, login, org, other_org, stages, users):
    login("sales")
    theirs = factories.make_deal(org, stage=stages[0], owner_id=users["manager"].id)
    assert client.post("/deals/bulk/delete", data={"ids": [str(theirs.id)]}, csrf=False).status_code == 400
    assert client.post("/deals/bulk/delete", data={"ids": [str(theirs.id)]}, headers=HX).status_code == 403
    assert client.post("/deals/bulk/delete", data={"ids": ["junk"]}, headers=HX).status_code == 400
    foreign = factories.make_deal(other_org)
    response = client.post("/deals/bulk/delete", data={"ids": [str(foreign.id)]}, headers=HX)
    assert response.status_code == 200 and "Nothing was deleted" in response.get_data(as_text=True)
    assert "btn-undo" not in response.get_data(as_text=True)
    assert not is_deleted(Deal, foreign.id)
    # Without htmx: Post/Redirect/Get back to the list.
    mine = factories.make_deal(org, stage=stages[0], owner_id=users["sales"].id)
    response = client.post("/deals/bulk/delete", data={"ids": [str(mine.id)]})
    assert response.status_code == 303 and response.headers["Location"].endswith("/deals")


# --- kanban card delete: the board comes back with the card in its column on Undo ------------------


def test_board_card_delete_and_undo(client, login, org, stages):
    login("manager")
    pipeline_id = stages[0].pipeline_id
    card = factories.make_deal(org, stage=stages[1], name="On the board")
    other = factories.make_deal(org, stage=stages[1], name="Neighbour")
    board = client.get(f"/deals/board?pipeline={pipeline_id}").get_data(as_text=True)
    assert f"/deals/board/delete?pipeline={pipeline_id}" in board and 'aria-label="Delete On the board"' in board
    response = client.post(f"/deals/board/delete?pipeline={pipeline_id}", data={"ids": [str(card.id)]}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="board"' in html and "<html" not in html
    assert f'data-deal-id="{card.id}"' not in html and f'data-deal-id="{other.id}"' in html
    assert f"/deals/board/restore?pipeline={pipeline_id}" in html and 'hx-target="#board"' in html
    assert "deals-changed" in events(response)
    response = client.post(f"/deals/board/restore?pipeline={pipeline_id}", data={"ids": [str(card.id)]}, headers=HX)
    html = response.get_data(as_text=True)
    column = html.split(f'data-stage-id="{stages[1].id}"')[1].split('class="board-column"')[0]
    assert response.status_code == 200 and f'data-deal-id="{card.id}"' in column
    assert "deals-changed" in events(response)


@pytest.mark.parametrize("cards", [1, 25])
def test_board_delete_budget_is_constant(client, login, org, stages, count_queries, cards):
    login("manager")
    deals = [factories.make_deal(org, stage=stages[i % 3]) for i in range(cards)]
    client.get(f"/deals/board?pipeline={stages[0].pipeline_id}")  # warm the pipeline cache
    with count_queries() as q:
        response = client.post(
            f"/deals/board/delete?pipeline={stages[0].pipeline_id}", data={"ids": [str(deals[0].id)]}, headers=HX
        )
    assert response.status_code == 200
    # select + update + history insert, then the board (headers aggregate, windowed cards, tags)
    assert q.count <= 7 + LOGIN_STATEMENTS, q


def test_board_delete_rules(client, login, org, other_org, stages, users):
    login("sales")
    theirs = factories.make_deal(org, stage=stages[0], owner_id=users["manager"].id)
    assert client.post("/deals/board/delete", data={"ids": [str(theirs.id)]}, csrf=False).status_code == 400
    assert client.post("/deals/board/delete", data={"ids": [str(theirs.id)]}, headers=HX).status_code == 403
    assert client.post("/deals/board/restore", data={"ids": [str(theirs.id)]}, csrf=False).status_code == 400
    foreign = factories.make_deal(other_org)
    assert client.post("/deals/board/delete", data={"ids": [str(foreign.id)]}, headers=HX).status_code == 200
    assert not is_deleted(Deal, foreign.id)
    assert client.post("/deals/board/delete?pipeline=junk", data={"ids": []}, headers=HX).status_code == 400
    response = client.post("/deals/board/delete", data={"ids": [str(theirs.id)]})
    assert response.status_code == 403  # a plain form is refused like an htmx request
    assert not is_deleted(Deal, theirs.id)


# --- activities in a timeline --------------------------------------------------------------------


def test_timeline_delete_and_undo(client, login, org, users):
    login("sales")
    contact = factories.make_contact(org, owner_id=users["sales"].id)
    activity = factories.make_activity(org, contact_id=contact.id, owner_id=users["sales"].id, subject="Ring back")
    timeline = client.get(f"/activities/timeline?contact={contact.id}", headers=HX).get_data(as_text=True)
    assert f"/activities/{activity.id}/timeline-delete" in timeline
    assert f'href="/contacts/{contact.id}"' in timeline  # the related record links to its page
    response = client.post(f"/activities/{activity.id}/timeline-delete", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="timeline-activity-{activity.id}"' in html and "was deleted" in html
    assert f"/activities/{activity.id}/restore" in html and "Undo" in html and "<html" not in html
    assert "activities-changed" in events(response) and is_deleted(Activity, activity.id)
    response = client.post(f"/activities/{activity.id}/restore", headers=HX)
    # The timeline listens to activities-toggled and reloads itself with the item back.
    assert response.status_code == 200 and "activities-toggled" in events(response)
    assert not is_deleted(Activity, activity.id)


def test_timeline_delete_rules(client, login, org, other_org, users):
    login("sales")
    theirs = factories.make_activity(org, owner_id=users["manager"].id)
    foreign = factories.make_activity(other_org)
    assert client.post(f"/activities/{theirs.id}/timeline-delete", csrf=False).status_code == 400
    assert client.post(f"/activities/{theirs.id}/timeline-delete", headers=HX).status_code == 403
    assert client.post(f"/activities/{foreign.id}/timeline-delete", headers=HX).status_code == 404
    assert client.post("/activities/junk/timeline-delete", headers=HX).status_code == 404
    mine = factories.make_activity(org, owner_id=users["sales"].id)
    assert client.post(f"/activities/{mine.id}/timeline-delete").status_code == 303


def test_activity_rows_link_to_their_records(client, login, org, users, stages):
    login("manager")
    company = factories.make_company(org, name="Linked Co")
    deal = factories.make_deal(org, stage=stages[0], name="Linked deal")
    factories.make_activity(org, company_id=company.id, deal_id=deal.id, owner_id=users["manager"].id)
    html = client.get("/activities?view=all").get_data(as_text=True)
    assert f'href="/companies/{company.id}"' in html and f'href="/deals/{deal.id}"' in html


# --- detail pages: timeline and history panels, deleted links --------------------------------------


@pytest.mark.parametrize("kind", ["contact", "company", "deal", "lead"])
def test_detail_pages_show_the_shared_timeline(client, login, org, stages, kind):
    login("manager")
    record = {
        "contact": lambda: factories.make_contact(org),
        "company": lambda: factories.make_company(org),
        "deal": lambda: factories.make_deal(org, stage=stages[0]),
        "lead": lambda: factories.make_lead(org),
    }[kind]()
    factories.make_activity(org, subject="Shared timeline item", **{f"{kind}_id": record.id})
    path = {"company": "companies"}.get(kind, kind + "s")
    html = client.get(f"/{path}/{record.id}").get_data(as_text=True)
    # The timeline arrives with the page (no request of its own) and refreshes itself from its URL.
    timeline = html[html.index('id="activity-timeline"') :]
    assert "Shared timeline item" in timeline and 'hx-trigger="load"' not in html
    assert f'hx-get="/activities/timeline?{kind}={record.id}"' in timeline
    assert "History" in html
    panel = client.get(f"/activities/timeline?{kind}={record.id}", headers=HX).get_data(as_text=True)
    assert "Shared timeline item" in panel and f"/activities/new?{kind}={record.id}" in panel


def test_company_and_lead_detail_show_history(client, login, org, users):
    login("manager")
    company = client.post("/companies", data={"name": "Historic", "owner_id": str(users["manager"].id)})
    assert company.status_code == 303
    html = client.get(company.headers["Location"]).get_data(as_text=True)
    assert "created this" in html
    lead = factories.make_lead(org, owner_id=users["manager"].id)
    client.post(f"/leads/{lead.id}/status", data={"status": "contacted"}, headers=HX)
    html = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert "updated" in html and "contacted" in html


def test_deleted_company_shows_on_contact_and_deal_pages(client, login, org, stages):
    login("manager")
    company = factories.make_company(org, name="Gone Co")
    contact = factories.make_contact(org, primary_company_id=company.id)
    deal = factories.make_deal(org, stage=stages[0], company_id=company.id)
    assert f'href="/companies/{company.id}"' in client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert client.post(f"/companies/{company.id}/delete", headers=HX).status_code == 200
    for url in (f"/contacts/{contact.id}", f"/deals/{deal.id}", "/deals", "/contacts"):
        html = client.get(url).get_data(as_text=True)
        assert "(deleted company)" in html and "Gone Co" not in html, url
    client.post(f"/companies/{company.id}/restore", headers=HX)
    assert "Gone Co" in client.get(f"/deals/{deal.id}").get_data(as_text=True)


# --- events the dashboard panels refresh on --------------------------------------------------------


def test_deal_views_send_deals_changed(client, login, org, stages):
    login("manager")
    response = client.post("/deals", data={"name": "Evented", "stage_id": str(stages[0].id), "value": "10"}, headers=HX)
    assert response.status_code == 204 and "deals-changed" in events(response)
    deal = db.session.execute(db.select(Deal).where(Deal.name == "Evented")).scalar_one()
    response = client.post(
        f"/deals/{deal.id}", data={"name": "Evented 2", "stage_id": str(stages[0].id), "value": "20"}, headers=HX
    )
    assert "deals-changed" in events(response)
    response = client.post(f"/deals/{deal.id}/move", data={"stage_id": str(stages[1].id)}, headers=HX)
    assert response.status_code == 200 and "deals-changed" in events(response)
    for action in ("won", "reopen", "delete", "restore"):
        response = client.post(f"/deals/{deal.id}/{action}", headers=HX)
        assert response.status_code == 200 and "deals-changed" in events(response), action


def test_dashboard_panels_listen_to_deal_and_activity_events(client, login):
    login("manager")
    html = client.get("/").get_data(as_text=True)
    assert "deals-changed from:body" in html and "activities-changed from:body" in html


# --- global search -----------------------------------------------------------------------------------


def test_global_search_links_to_detail_pages(client, login, org, stages):
    login("admin")
    contact = factories.make_contact(org, first_name="Zebulon", last_name="Quark")
    company = factories.make_company(org, name="Zebulon Works")
    lead = factories.make_lead(org, first_name="Zebulon", last_name="Lead")
    deal = factories.make_deal(org, stage=stages[0], name="Zebulon deal")
    html = client.get("/search?q=zebulon", headers=HX).get_data(as_text=True)
    for url in (f"/contacts/{contact.id}", f"/companies/{company.id}", f"/leads/{lead.id}", f"/deals/{deal.id}"):
        assert f'href="{url}"' in html, url


def test_timeline_as_a_page_renders_without_the_deleted_item_block(client, login, org):
    login("manager")
    contact = factories.make_contact(org)
    response = client.get(f"/activities/timeline?contact={contact.id}")
    assert response.status_code == 200 and 'id="activity-timeline"' in response.get_data(as_text=True)


@pytest.mark.parametrize("entities", ["contacts", "companies", "leads", "deals"])
def test_an_export_with_a_bad_filter_is_a_400_naming_the_condition(client, login, entities):
    login("manager")
    response = client.get(f"/{entities}/export.csv?f=bogus.equals.x")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Fix the filter before exporting:" in body and "bogus" in body

"""A page offers only the actions its user may take (issue 18, "Actions a user may take").

Each detail page is rendered as each role, for a record someone else owns and for one the user
owns; every change action it offers (edit, delete, convert, won / lost / reopen, lead status,
inline edits) must be one the service allows, which its edit form (the same rule: get_for_edit,
permissions.can) proves; and a page whose edit form is refused offers none of them.
"""

from __future__ import annotations

import re

import pytest

from crm_web.permissions import can
from tests import factories

ACTIONS = re.compile(
    r'(?:hx-post|hx-get|href)="(/(?:contacts|companies|leads|deals)/[0-9a-f-]{36}/'
    r'(edit|delete|convert|won|lost|reopen|status|fields/[a-z_]+(?:/edit)?))"'
)


def _record(kind: str, org, owner_id):
    if kind == "contacts":
        return factories.make_contact(org, owner_id=owner_id, lead_source="referral")
    if kind == "companies":
        return factories.make_company(org, owner_id=owner_id)
    if kind == "leads":
        return factories.make_lead(org, owner_id=owner_id)
    return factories.make_deal(org, owner_id=owner_id)


@pytest.mark.parametrize("kind", ["contacts", "companies", "leads", "deals"])
@pytest.mark.parametrize("role", ["sales", "manager", "admin"])
@pytest.mark.parametrize("whose", ["theirs", "mine"])
def test_every_offered_action_is_allowed(client, login, org, users, kind, role, whose):
    user = login(role)
    owner = users["admin" if role != "admin" else "manager"] if whose == "theirs" else user
    record = _record(kind, org, owner.id)
    html = client.get(f"/{kind}/{record.id}").get_data(as_text=True)
    offered = {action for _, action in ACTIONS.findall(html)}
    allowed = client.get(f"/{kind}/{record.id}/edit").status_code == 200
    assert allowed == can(user, "change", record)
    if allowed:
        assert {"edit", "delete"} <= offered, offered
    else:
        assert offered == set(), f"{role} is offered {offered} on {whose} {kind} but may not change it"


def test_board_cards_offer_moves_only_to_who_may_move_them(client, login, org, users):
    pipeline = factories.make_pipeline(org)
    stage = factories.stages_of(pipeline)[0]
    theirs = factories.make_deal(org, stage=stage, owner_id=users["admin"].id, name="Their deal")
    mine = factories.make_deal(org, stage=stage, owner_id=users["sales"].id, name="My deal")
    for role, locked in (("sales", {theirs.id}), ("manager", set())):
        login(role)
        html = client.get("/deals/board").get_data(as_text=True)
        for deal in (theirs, mine):
            card = html.split(f'id="deal-card-{deal.id}"', 1)[1].split("</article>", 1)[0]
            if deal.id in locked:
                assert card.startswith(" data-deal-id") and "data-locked" in card.split(">", 1)[0]
                assert "Move to…" not in card and "Delete" not in card
            else:
                assert "data-locked" not in card.split(">", 1)[0] and "Move to…" in card and "Delete" in card


@pytest.mark.parametrize("kind", ["contacts", "companies", "leads", "deals"])
def test_list_rows_offer_edit_delete_and_selection_only_when_allowed(client, login, org, users, kind):
    theirs = _record(kind, org, users["admin"].id)
    mine = _record(kind, org, users["sales"].id)
    for role, refused in (("sales", {theirs.id}), ("manager", set())):
        login(role)
        html = client.get(f"/{kind}").get_data(as_text=True)
        for record in (theirs, mine):
            offered = f"/{kind}/{record.id}/edit" in html and f'name="ids" value="{record.id}"' in html
            assert offered == (record.id not in refused), (role, kind, record.id in refused)


def test_the_deal_page_edits_its_tags(client, login, org, users):
    deal = factories.make_deal(org, owner_id=users["sales"].id)
    tag = factories.make_tag(org, name="Renewal")
    login("sales")
    html = client.get(f"/deals/{deal.id}").get_data(as_text=True)
    assert f'id="tags-deal-{deal.id}"' in html
    response = client.post(f"/tags/deal/{deal.id}/assign", data={"tag_id": str(tag.id)}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Renewal" in response.get_data(as_text=True)
    assert "Renewal" in client.get(f"/deals/{deal.id}").get_data(as_text=True)
    theirs = factories.make_deal(org, owner_id=users["admin"].id)
    assert f'id="tags-deal-{theirs.id}"' not in client.get(f"/deals/{theirs.id}").get_data(as_text=True)

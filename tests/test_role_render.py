"""Every main page rendered as admin, manager and sales: each offers exactly the actions the services
allow that role (issue 18, "Actions a user may take"). A sales user sees no selection box, Edit,
Delete, Complete or drag handle on a record owned by someone else, and every Edit link a page offers
opens (never a 403); pages a role may not use are neither linked nor served."""

from __future__ import annotations

import re

import pytest

from crm_web.extensions import db
from crm_web.services.contacts import ContactService
from tests import factories

ROLES = ("admin", "manager", "sales")
LISTS = {"contact": "/contacts", "company": "/companies", "lead": "/leads", "deal": "/deals"}


@pytest.fixture
def world(org, users):
    """A record of each kind owned by the admin, and one owned by the sales user."""
    stages = factories.stages_of(factories.make_pipeline(org))
    made = {}
    for owner in ("admin", "sales"):
        owner_id = users[owner].id
        contact = factories.make_contact(org, owner_id=owner_id, first_name=f"{owner}-contact")
        made[owner] = {
            "contact": contact,
            "company": factories.make_company(org, owner_id=owner_id, name=f"{owner}-company"),
            "lead": factories.make_lead(org, owner_id=owner_id, first_name=f"{owner}-lead"),
            "deal": factories.make_deal(org, stage=stages[0], owner_id=owner_id, name=f"{owner}-deal"),
            "activity": factories.make_activity(
                org, owner_id=owner_id, subject=f"{owner}-activity", contact_id=contact.id
            ),
        }
    return made


def _row(html: str, dom_id: str) -> str:
    found = re.search(rf'<tr id="{dom_id}".*?</tr>', html, re.S)
    assert found, dom_id
    return found.group(0)


def _offered_edits(html: str) -> set[str]:
    return set(re.findall(r'href="(/(?:contacts|companies|leads|deals|activities)/[0-9a-f-]{36}/edit)"', html))


@pytest.mark.parametrize("role", ROLES)
def test_each_page_offers_a_role_only_what_it_may_do(client, login, org, users, world, role):
    login(role)
    manager = role != "sales"
    admins, own = world["admin"], world["sales"]
    offered: set[str] = set()

    for kind, url in LISTS.items():
        page = client.get(url).get_data(as_text=True)
        theirs, mine = _row(page, f"{kind}-{admins[kind].id}"), _row(page, f"{kind}-{own[kind].id}")
        assert ('name="ids"' in theirs) is manager and ("/edit" in theirs) is manager, (kind, role)
        assert 'name="ids"' in mine and "/edit" in mine  # sales change their own records
        assert "data-bulk-bar" in page and f"{url}/bulk/owner" in page
        offered |= _offered_edits(page)

    activities = client.get("/activities?view=all").get_data(as_text=True)
    theirs = _row(activities, f"activity-{admins['activity'].id}")
    for action in ('name="ids"', "/edit", "/complete", "/delete"):
        assert (action in theirs) is manager, (action, role)
    assert "/complete" in _row(activities, f"activity-{own['activity'].id}")
    offered |= _offered_edits(activities)

    for kind in ("contact", "company", "lead", "deal"):
        plural = LISTS[kind]
        detail = client.get(f"{plural}/{admins[kind].id}").get_data(as_text=True)
        assert (f"{plural}/{admins[kind].id}/edit" in detail) is manager, (kind, role)
        assert (f"{plural}/{admins[kind].id}/delete" in detail) is manager, (kind, role)
        offered |= _offered_edits(detail)
    timeline = client.get(f"/activities/timeline?contact={admins['contact'].id}").get_data(as_text=True)
    assert (f"/activities/{admins['activity'].id}/timeline-delete" in timeline) is manager
    assert (f"/activities/{admins['activity'].id}/complete" in timeline) is manager

    board = client.get("/deals/board").get_data(as_text=True)
    card = re.search(rf'<[^>]*data-deal-id="{admins["deal"].id}"[^>]*>', board)
    assert card, "the admin's deal is on the board"
    assert ("data-locked" in card.group(0)) is not manager, card.group(0)  # no drag handle, no Move to…

    nav = client.get("/").get_data(as_text=True)
    for link in ("/settings/users", "/pipelines", "/import", "/trash"):
        assert (f'href="{link}"' in nav) is manager, (link, role)
    for url in ("/pipelines", "/settings/users", "/settings/tags", "/import"):
        assert client.get(url).status_code == (200 if manager else 403), (url, role)
    gone = factories.make_contact(org, first_name="Trashed", owner_id=users["admin"].id)
    ContactService(factories.actor_for(users["admin"])).delete(gone.id)
    trash = client.get("/trash")
    assert trash.status_code == (200 if manager else 403)
    if manager:
        assert "Trashed" in trash.text and ("Delete permanently" in trash.text) is (role == "admin")

    # No offered action is refused: every Edit link the pages showed opens.
    assert offered
    for url in sorted(offered):
        assert client.get(url).status_code == 200, (url, role)


def test_sales_see_import_when_their_organisation_allows_it(client, login, org):
    login("sales")
    assert 'href="/import"' not in client.get("/").get_data(as_text=True)
    org.sales_can_import = True
    db.session.commit()
    assert 'href="/import"' in client.get("/").get_data(as_text=True)
    assert client.get("/import").status_code == 200

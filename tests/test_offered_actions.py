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

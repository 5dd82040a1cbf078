"""The trash's record history and a user's history read in words like the detail pages (issue 18,
"Things people read"): names instead of ids, labels instead of stored choices, in a constant number
of statements."""

from __future__ import annotations

import re

from crm_web.services.contacts import ContactService
from crm_web.services.users import UserService
from tests import factories
from tests.conftest import HX

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _history_block(html: str) -> str:
    found = re.search(r'<ol class="timeline history-list">.*?</ol>', html, re.S)
    assert found, html[-800:]
    return found.group(0)


def test_the_trash_history_names_owners_companies_and_tags(client, login, org, users, count_queries):
    admin = users["admin"]
    company = factories.make_company(org, name="Acme Trading")
    tag = factories.make_tag(org, name="Hot lead")
    contact = factories.make_contact(org, first_name="Ada", owner_id=admin.id)
    service = ContactService(factories.actor_for(admin))
    service.update(contact.id, owner_id=users["sales"].id, primary_company_id=company.id, status="customer")
    service.bulk_add_tag([contact.id], tag_id=tag.id)
    service.delete(contact.id)
    login("manager")
    with count_queries() as one:
        html = client.get(f"/trash/contact/{contact.id}", headers=HX).get_data(as_text=True)
    history = _history_block(html)
    assert "Acme Trading" in history and users["sales"].name in history and "Hot lead" in history
    assert "Customer" in history and not UUID.search(re.sub(r'href="[^"]*"', "", history))
    assert one.count <= 6, one  # the user, the record, its history, every name it mentions in one statement


def test_a_users_history_reads_in_words(client, login, org, users):
    admin = login("admin")
    sales = users["sales"]
    UserService(factories.actor_for(admin)).change_role(sales.id, role="manager")
    html = client.get(f"/settings/users/{sales.id}").get_data(as_text=True)
    history = _history_block(html)
    assert "Manager" in history and not UUID.search(re.sub(r'href="[^"]*"', "", history))

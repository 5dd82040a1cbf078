"""Idempotency keys on the create forms (crm_web/idempotency.py): a submit sent twice creates once."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from crm_web import idempotency
from crm_web.extensions import cache, db
from crm_web.models import Contact

KEY = re.compile(r'name="idempotency_key" value="([0-9a-f]{32})"')


def contacts_named(first_name: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Contact).where(Contact.first_name == first_name))


def test_a_create_form_sent_twice_creates_once(client, login):
    login("admin")
    page = client.get("/contacts/new").get_data(as_text=True)
    key = KEY.search(page).group(1)
    assert KEY.search(client.get("/contacts/new").get_data(as_text=True)).group(1) != key  # fresh per form
    data = {"first_name": "Twice", "last_name": "Sent", "status": "lead", "idempotency_key": key}

    first = client.post("/contacts", data=data)
    again = client.post("/contacts", data=data)
    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]  # on to the record the first made
    assert contacts_named("Twice") == 1

    # Without a key (an API client, an old page) nothing is checked.
    del data["idempotency_key"]
    assert client.post("/contacts", data=data).status_code == 303
    assert contacts_named("Twice") == 2


def test_a_failed_create_releases_its_key(client, login):
    login("admin")
    key = idempotency.new_key()
    invalid = client.post("/contacts", data={"first_name": "", "status": "lead", "idempotency_key": key})
    assert invalid.status_code == 422
    fixed = client.post("/contacts", data={"first_name": "Fixed", "status": "lead", "idempotency_key": key})
    assert fixed.status_code == 303
    assert contacts_named("Fixed") == 1


def test_a_submit_whose_first_is_still_saving_is_a_conflict(client, login):
    user = login("admin")
    key = idempotency.new_key()
    assert idempotency.claim(user.id, "contact", key) is None  # the first submit, still running
    response = client.post("/contacts", data={"first_name": "Racing", "status": "lead", "idempotency_key": key})
    assert response.status_code == 409
    assert "being saved already" in response.get_data(as_text=True)
    assert contacts_named("Racing") == 0
    assert cache.get(f"idem:{user.id}:contact:{key}") == idempotency.PENDING  # the first one's claim is kept


def test_keys_are_per_user(client, login, users):
    key = idempotency.new_key()
    login("admin")
    assert (
        client.post("/contacts", data={"first_name": "Mine", "status": "lead", "idempotency_key": key}).status_code
        == 303
    )
    login("manager")
    assert (
        client.post("/contacts", data={"first_name": "Mine", "status": "lead", "idempotency_key": key}).status_code
        == 303
    )
    assert contacts_named("Mine") == 2

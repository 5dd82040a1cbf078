"""Concurrent saves of one record: the later save is told the record changed (409), never a
silent overwrite (optimistic locking on the `version` column; docs/benchmarks.md, "Concurrency")."""

from __future__ import annotations

import pytest

from crm_web.errors import Conflict
from crm_web.extensions import db
from crm_web.models import Contact
from crm_web.services.base import Actor
from crm_web.services.contacts import ContactService
from tests import factories


def test_two_users_editing_the_same_contact(users, org):
    contact = factories.make_contact(org, first_name="Ada", title="CEO")
    mine = ContactService(Actor.of(users["manager"]))
    loaded = mine.get(contact.id)  # this user's copy: version 1
    assert loaded.version == 1
    # The other user's save lands first (another session: a plain UPDATE that bumps the version).
    db.session.execute(Contact.__table__.update().where(Contact.__table__.c.id == contact.id)
                       .values(title="CTO", version=Contact.__table__.c.version + 1))
    with pytest.raises(Conflict):
        mine.update(contact.id, title="CFO")


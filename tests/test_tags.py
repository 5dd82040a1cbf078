"""Tags: inline create with colour, assign/remove on every taggable type, filter by tag."""

from __future__ import annotations

import uuid

import pytest

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.services.tags import TagService
from tests import factories
from tests.conftest import HX


def test_assign_creates_inline_and_reuses_by_name(org, users):
    contact = factories.make_contact(org)
    service = TagService(factories.actor_for(users["admin"]))
    state = service.assign("contact", contact.id, name="  Key   account ", color="#FF0000")
    assert [(t.name, t.color) for t in state.tags] == [("Key account", "#ff0000")]
    again = service.assign("contact", contact.id, name="Key account")
    assert len(again.tags) == 1 and len(again.all_tags) == 1
    assert service.remove("contact", contact.id, tag_id=state.tags[0].id).tags == []


@pytest.mark.parametrize("kind", ["contact", "company", "lead", "deal"])
def test_every_taggable_type(org, users, kind):
    record = {
        "contact": factories.make_contact,
        "company": factories.make_company,
        "lead": factories.make_lead,
        "deal": factories.make_deal,
    }[kind](org)
    tag = factories.make_tag(org)
    state = TagService(factories.actor_for(users["admin"])).assign(kind, record.id, tag_id=tag.id)
    assert [t.id for t in state.tags] == [tag.id]


def test_errors(org, other_org, users):
    service = TagService(factories.actor_for(users["admin"]))
    contact = factories.make_contact(org)
    with pytest.raises(NotFound):
        service.assign("user", contact.id, name="x")
    with pytest.raises(NotFound):
        service.assign("contact", factories.make_contact(other_org).id, name="x")
    with pytest.raises(NotFound):
        service.assign("contact", contact.id, tag_id=factories.make_tag(other_org).id)
    with pytest.raises(ValidationError):
        service.assign("contact", contact.id, name="x", color="red")
    owned = factories.make_contact(org, owner_id=users["manager"].id)
    with pytest.raises(PermissionDenied):
        TagService(factories.actor_for(users["sales"])).assign("contact", owned.id, name="x")


def test_tag_views(client, login, org, other_org):
    contact = factories.make_contact(org)
    login("admin")
    response = client.post(
        f"/tags/contact/{contact.id}/assign", data={"name": "<b>VIP</b>", "color": "#00aa00"}, headers=HX
    )
    assert response.status_code == 200 and f'id="tags-contact-{contact.id}"' in response.text
    assert "&lt;b&gt;VIP&lt;/b&gt;" in response.text and "<b>VIP" not in response.text
    assert client.post(f"/tags/account/{contact.id}/assign", data={"name": "x"}, headers=HX).status_code == 404
    assert client.post(f"/tags/contact/{uuid.uuid4()}/assign", data={"name": "x"}, headers=HX).status_code == 404
    assert client.post(f"/tags/contact/{contact.id}/remove", data={}, headers=HX).status_code == 400
    assert client.post(f"/tags/contact/{contact.id}/assign", data={"name": "x"}, csrf=False).status_code == 400


def test_filter_contacts_by_tag(client, login, org):
    tagged = factories.make_contact(org, first_name="Tagged")
    factories.make_contact(org, first_name="Plain")
    tag = TagService(factories.actor_for(login("admin"))).assign("contact", tagged.id, name="Hot").tags[0]
    text = client.get(f"/contacts?f=tags.in.{tag.id}", headers=HX).text
    assert "Tagged" in text and "Plain" not in text

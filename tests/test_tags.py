"""Tags: inline create with colour, assign/remove on every taggable type, filter by tag."""

from __future__ import annotations

import re
import uuid

import pytest

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import deal_tags
from crm_web.services.contacts import ContactService
from crm_web.services.deals import DealService
from crm_web.services.tags import TagService
from crm_web.services.trash import TrashRef, TrashService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


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


def test_tag_counts_are_cached_and_follow_every_way_a_link_changes(client, login, org, users, count_queries):
    """The settings page's counts read every link of the organisation: cached, and current after a
    link written by the tag box, by a bulk action, by a statement on the link table, a tag merge,
    and a purge that takes a record's links with it."""
    login("admin")
    vip, key = factories.make_tag(org, name="VIP"), factories.make_tag(org, name="Key")
    ann, bob = factories.make_contact(org), factories.make_contact(org)
    deal = factories.make_deal(org)

    def uses() -> dict[str, int]:
        html = client.get("/settings/tags").get_data(as_text=True)
        return {
            name: int(re.search(rf'data-tag-id="{tag.id}">.*?<td class="num">(\d+)</td>', html, re.S).group(1))
            for name, tag in (("VIP", vip), ("Key", key))
        }

    assert uses() == {"VIP": 0, "Key": 0}
    TagService(factories.actor_for(users["admin"])).assign("contact", ann.id, tag_id=vip.id)
    assert uses() == {"VIP": 1, "Key": 0}
    with count_queries() as q:
        assert uses() == {"VIP": 1, "Key": 0}
    assert q.count == 1 + LOGIN_STATEMENTS, q  # the tags; their counts from the cache
    tagged = client.post("/contacts/bulk/tag", data={"ids": [str(bob.id)], "tag_id": str(key.id)}, headers=HX)
    assert tagged.status_code == 200
    assert uses() == {"VIP": 1, "Key": 1}
    db.session.execute(deal_tags.insert(), [{"deal_id": deal.id, "tag_id": vip.id}])
    db.session.commit()
    assert uses() == {"VIP": 2, "Key": 1}
    merged = client.post(f"/settings/tags/{key.id}/merge", data={"into": str(vip.id)}, headers=HX)
    assert merged.status_code == 200
    html = client.get("/settings/tags").get_data(as_text=True)
    assert re.search(rf'data-tag-id="{vip.id}">.*?<td class="num">3</td>', html, re.S)
    # A record in the trash still carries its tags (a restore brings them back); a purge takes them.
    ContactService(factories.actor_for(users["admin"])).delete(ann.id)
    html = client.get("/settings/tags").get_data(as_text=True)
    assert re.search(rf'data-tag-id="{vip.id}">.*?<td class="num">3</td>', html, re.S)
    TrashService(factories.actor_for(users["admin"])).purge([TrashRef("contact", ann.id)])
    html = client.get("/settings/tags").get_data(as_text=True)
    assert re.search(rf'data-tag-id="{vip.id}">.*?<td class="num">2</td>', html, re.S)
    # A record's other changes leave the counts in the cache; its tags set by its form do not.
    ContactService(factories.actor_for(users["admin"])).update(bob.id, city="Lyon")
    with count_queries() as q:
        client.get("/settings/tags")
    assert not [s for s in q.statements if "GROUP BY" in s and "_tags" in s], q
    other = factories.make_deal(org)
    client.get("/settings/tags")  # the counts in the cache, before the form sets the tags
    DealService(factories.actor_for(users["admin"])).update(other.id, tag_ids=[vip.id])
    html = client.get("/settings/tags").get_data(as_text=True)
    assert re.search(rf'data-tag-id="{vip.id}">.*?<td class="num">3</td>', html, re.S)

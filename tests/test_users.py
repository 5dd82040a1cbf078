"""Team and account administration: users, roles, links, my account, organisation and tag settings."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import Deal, RecordHistory, Tag, User, UserToken, contact_tags, utcnow
from crm_web.services import users as user_services
from crm_web.services.users import AccountService, UserService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS, tenant_statements

PASSWORD = "tidal-lantern-42"


def service(user):
    return UserService(factories.actor_for(user))


def history(user) -> list[RecordHistory]:
    return list(
        db.session.scalars(
            select(RecordHistory)
            .where(RecordHistory.entity_type == "user", RecordHistory.entity_id == user.id)
            .order_by(RecordHistory.created_at)
        )
    )


# --- service: adding users and links ------------------------------------------------------------


def test_admin_adds_a_user_with_an_invitation_link_stored_hashed(users):
    user, link = service(users["admin"]).create(name="New Rep", email=" New.Rep@Acme.test ", role="sales")
    assert user.email == "new.rep@acme.test" and user.status == "invited" and not user.has_password
    token = db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))
    assert token.purpose == "invite" and token.token_hash != link.token and len(token.token_hash) == 64
    assert timedelta(days=6, hours=23) < token.expires_at - utcnow() <= timedelta(days=7)
    assert [e.action for e in history(user)] == ["created"]


def test_an_initial_password_must_be_changed_at_first_sign_in(client, users):
    user, link = service(users["admin"]).create(name="Temp", email="temp@acme.test", role="sales", password=PASSWORD)
    assert link is None and user.must_change_password
    from tests.test_sessions import login_form

    assert login_form(client, "temp@acme.test").status_code == 303
    response = client.get("/contacts")
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert client.get("/contacts", headers=HX).headers["HX-Redirect"] == "/account"
    changed = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "another-long-one-7",
            "confirm_password": "another-long-one-7",
        },
    )
    assert changed.status_code == 303
    assert client.get("/contacts").status_code == 200


@pytest.mark.parametrize(
    "values,field",
    [
        ({"name": "", "email": "a@acme.test", "role": "sales"}, "name"),
        ({"name": "A", "email": "not-an-email", "role": "sales"}, "email"),
        ({"name": "A", "email": "a@acme.test", "role": "king"}, "role"),
        ({"name": "A", "email": "a@acme.test", "role": "sales", "password": "short"}, "password"),
        ({"name": "A", "email": "a@acme.test", "role": "sales", "password": "1234567890"}, "password"),
        ({"name": "A", "email": "a@acme.test", "role": "sales", "password": "a@acme.test"}, "password"),
    ],
)
def test_bad_user_values_are_field_errors(users, values, field):
    with pytest.raises(ValidationError) as error:
        service(users["admin"]).create(**values)
    assert field in error.value.field_errors


def test_emails_are_unique_across_the_product_whatever_their_case(users, other_org):
    factories.make_user(other_org, email="taken@globex.test")
    with pytest.raises(ValidationError) as error:
        service(users["admin"]).create(name="Dup", email="TAKEN@globex.test", role="sales")
    assert "already exists" in error.value.field_errors["email"]


def test_only_admins_change_users_and_managers_only_look(users):
    manager = service(users["manager"])
    assert {row.user.id for row in manager.list_page()} == {u.id for u in users.values()}
    for attempt in (
        lambda: manager.create(name="Boss", email="boss@acme.test", role="admin"),
        lambda: manager.change_role(users["sales"].id, role="admin"),
        lambda: manager.change_role(users["admin"].id, role="sales"),
        lambda: manager.deactivate(users["admin"].id),
        lambda: manager.password_link(users["admin"].id),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    with pytest.raises(PermissionDenied):
        service(users["sales"]).list_page()


def test_another_organisations_user_is_not_found(users, other_org):
    stranger = factories.make_user(other_org, role="admin")
    admin = service(users["admin"])
    for attempt in (
        lambda: admin.detail(stranger.id),
        lambda: admin.change_role(stranger.id, role="sales"),
        lambda: admin.deactivate(stranger.id),
        lambda: admin.reactivate(stranger.id),
        lambda: admin.password_link(stranger.id),
    ):
        with pytest.raises(NotFound):
            attempt()
    with pytest.raises(ValidationError):
        admin.deactivate(users["sales"].id, reassign_to=stranger.id)


def test_the_last_active_admin_cannot_be_demoted_or_deactivated_even_by_themselves(users):
    admin = service(users["admin"])
    with pytest.raises(ValidationError, match="at least one active admin"):
        admin.change_role(users["admin"].id, role="manager")
    with pytest.raises(ValidationError, match="at least one active admin"):
        admin.deactivate(users["admin"].id)
    admin.change_role(users["manager"].id, role="admin")
    admin.change_role(users["admin"].id, role="sales")  # another admin exists now
    assert db.session.get(User, users["admin"].id).role == "sales"


def test_a_role_change_is_recorded_and_ends_sessions(users):
    before = users["sales"].session_version
    service(users["admin"]).change_role(users["sales"].id, role="manager")
    user = db.session.get(User, users["sales"].id)
    assert user.role == "manager" and user.session_version == before + 1
    entry = history(user)[-1]
    assert entry.changes == {"role": ["sales", "manager"]} and entry.actor_id == users["admin"].id


def test_deactivation_reassigns_open_work_in_one_statement_per_table_and_undo_gives_it_back(org, users, count_queries):
    rep, manager = users["sales"], users["manager"]
    open_deal = factories.make_deal(org, owner_id=rep.id)
    won_deal = factories.make_deal(org, owner_id=rep.id, status="won")
    lead = factories.make_lead(org, owner_id=rep.id)
    task = factories.make_activity(org, owner_id=rep.id)
    done = factories.make_activity(org, owner_id=rep.id, status="completed")
    admin = service(users["admin"])
    with count_queries() as queries:
        result = admin.deactivate(rep.id, reassign_to=manager.id)
    updates = [s for s in queries.statements if s.lstrip().upper().startswith("UPDATE") and " owner_id" in s]
    assert len(updates) == 3, queries
    assert result.moved == {"deal": 1, "lead": 1, "activity": 1} and "1 deal" in result.summary
    owners = {
        row.id: row.owner_id
        for model in (Deal,)
        for row in db.session.scalars(
            select(model).where(model.org_id == org.id).execution_options(populate_existing=True)
        )
    }
    assert owners[open_deal.id] == manager.id and owners[won_deal.id] == rep.id
    assert not db.session.get(User, rep.id).active
    # Undo: the user is back, and what the manager still owns of it returns.
    user, returned = admin.reactivate(rep.id, undo_entry=result.entry_id)
    assert user.active and returned == 3
    for model, obj in ((Deal, open_deal),):
        assert db.session.scalar(select(model.owner_id).where(model.id == obj.id)) == rep.id
    from crm_web.models import Activity, Lead

    assert db.session.scalar(select(Lead.owner_id).where(Lead.id == lead.id)) == rep.id
    assert db.session.scalar(select(Activity.owner_id).where(Activity.id == task.id)) == rep.id
    assert db.session.scalar(select(Activity.owner_id).where(Activity.id == done.id)) == rep.id
    with pytest.raises(NotFound):  # an Undo runs once
        admin.reactivate(rep.id, undo_entry=result.entry_id)


# --- password links ----------------------------------------------------------------------------


def test_an_invitation_link_sets_the_password_once_and_signs_in(app, client, users):
    user, link = service(users["admin"]).create(name="Invitee", email="invitee@acme.test", role="sales")
    page = client.get(f"/set-password/{link.token}")
    assert page.status_code == 200 and "Invitee" in page.get_data(as_text=True)
    weak = client.post(f"/set-password/{link.token}", data={"password": "password1", "confirm_password": "password1"})
    assert weak.status_code == 422 and "at least 10 characters" in weak.get_data(as_text=True)
    response = client.post(f"/set-password/{link.token}", data={"password": PASSWORD, "confirm_password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get(f"/set-password/{link.token}").status_code == 404  # single use
    again = app.test_client()
    assert again.post(
        f"/set-password/{link.token}", data={"password": PASSWORD, "confirm_password": PASSWORD}
    ).status_code in (400, 404)
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(PASSWORD)


def test_a_link_expires_and_a_new_one_replaces_the_old(client, users):
    user, first = service(users["admin"]).create(name="Late", email="late@acme.test", role="sales")
    second = service(users["admin"]).password_link(user.id)
    assert second.purpose == "invite"
    assert client.get(f"/set-password/{first.token}").status_code == 404
    db.session.execute(
        UserToken.__table__.update()
        .where(UserToken.user_id == user.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert client.get(f"/set-password/{second.token}").status_code == 404
    assert client.get("/set-password/not-a-token").status_code == 404


def test_a_link_is_useless_for_another_organisation(app, client, users, other_org):
    """A link belongs to one user: another organisation's admin can neither create one for that user
    nor, holding one, use it for anything but that user's password."""
    stranger = factories.make_user(other_org, role="admin")
    with pytest.raises(NotFound):
        service(stranger).password_link(users["sales"].id)
    link = service(users["admin"]).password_link(users["sales"].id)
    from tests.test_sessions import login_form

    factories.make_user(other_org, role="sales", email="rep@globex.test", password=PASSWORD)
    assert login_form(client, "rep@globex.test").status_code == 303  # signed in to the other organisation
    response = client.post(f"/set-password/{link.token}", data={"password": PASSWORD, "confirm_password": PASSWORD})
    assert response.status_code == 303
    assert "rep@globex.test" not in client.get("/").get_data(as_text=True)  # now the link's own user only
    db.session.expire_all()
    assert db.session.get(User, users["sales"].id).check_password(PASSWORD)
    assert db.session.scalar(select(User).where(User.email == "rep@globex.test")).check_password(PASSWORD)


def test_a_reset_link_ends_the_users_sessions_and_is_recorded(users):
    before = users["sales"].session_version
    link = service(users["admin"]).password_link(users["sales"].id)
    assert link.purpose == "reset"
    assert db.session.get(User, users["sales"].id).session_version == before + 1
    user = user_services.use_link(link.token, password=PASSWORD, confirm=PASSWORD)
    assert user.session_version == before + 2 and user.check_password(PASSWORD)
    assert [e.changes.get("password") for e in history(user)][-2:] == [["", "reset link created"], ["", "reset"]]


# --- my account --------------------------------------------------------------------------------


def test_changing_my_password_needs_the_current_one_and_keeps_this_session_only(app, client, org):
    from tests.test_sessions import login_form

    me = factories.make_user(org, email="me@acme.test", password=PASSWORD)
    other_device = app.test_client()
    assert login_form(other_device, me.email).status_code == 303
    assert login_form(client, me.email).status_code == 303
    wrong = client.post(
        "/account/password",
        data={"current_password": "nope", "new_password": "fresh-long-words", "confirm_password": "fresh-long-words"},
    )
    assert wrong.status_code == 422 and "not your current password" in wrong.get_data(as_text=True)
    right = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": "fresh-long-words", "confirm_password": "fresh-long-words"},
    )
    assert right.status_code == 303
    assert client.get("/").status_code == 200
    assert other_device.get("/").status_code == 302


def test_sign_out_everywhere_else_keeps_this_session(app, client, org):
    from tests.test_sessions import login_form

    me = factories.make_user(org, email="me@acme.test", password=PASSWORD)
    other_device = app.test_client()
    login_form(other_device, me.email)
    login_form(client, me.email)
    assert client.post("/account/sessions").status_code == 303
    assert client.get("/").status_code == 200 and other_device.get("/").status_code == 302


def test_my_name_change_is_validated_and_recorded(client, login, users):
    login("sales")
    assert client.post("/account", data={"name": "  "}).status_code == 422
    assert client.post("/account", data={"name": "x" * 201}).status_code == 422
    assert client.post("/account", data={"name": "Sam  Seller"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(User, users["sales"].id).name == "Sam Seller"
    AccountService(users["sales"])  # the service is usable directly too


# --- views ---------------------------------------------------------------------------------------


def test_users_page_budget_is_the_same_for_3_and_50_users(client, login, org, users, count_queries, engine_name):
    login("admin")
    with count_queries() as few:
        assert client.get("/settings/users").status_code == 200
    for _ in range(47):
        factories.make_user(org, role="sales")
    with count_queries() as many:
        body = client.get("/settings/users").get_data(as_text=True)
    assert few.count == many.count == LOGIN_STATEMENTS + 1 + tenant_statements(engine_name, commits=0), many
    assert body.count("data-user-id=") == 50


def test_users_list_shows_open_live_work_last_sign_in_and_searches_email(client, login, org, users):
    rep = users["sales"]
    pipeline = factories.make_pipeline(org)
    for values in ({}, {}, {"status": "won", "closed_at": utcnow()}, {"deleted_at": utcnow()}):
        factories.make_deal(org, pipeline=pipeline, owner_id=rep.id, **values)
    for values in ({}, {"status": "in_progress"}, {"status": "completed", "completed_at": utcnow()}):
        factories.make_activity(org, owner_id=rep.id, **values)
    factories.make_activity(org, owner_id=rep.id, deleted_at=utcnow())
    rep.last_login_at = utcnow() - timedelta(hours=3)
    db.session.commit()
    rows = {row.user.id: row for row in service(users["admin"]).list_page()}
    assert (rows[rep.id].open_deals, rows[rep.id].open_activities) == (2, 2)
    assert (rows[users["manager"].id].open_deals, rows[users["manager"].id].open_activities) == (0, 0)
    login("admin")
    body = client.get("/settings/users").get_data(as_text=True)
    line = body.split(f'data-user-id="{rep.id}"')[1].split("</tr>")[0]
    assert "3 hours ago" in line and re.findall(r'<td class="num">(\d+)</td>', line) == ["2", "2"]
    assert "never" in body.split(f'data-user-id="{users["manager"].id}"')[1].split("</tr>")[0]
    found = client.get("/settings/users?q=" + rep.email.split("@")[0].upper(), headers=HX).get_data(as_text=True)
    assert found.count("data-user-id=") == 1 and rep.email in found
    assert "No user matches" in client.get("/settings/users?q=nobody-at-all", headers=HX).get_data(as_text=True)


def test_users_page_search_and_fragment(client, login, users):
    login("manager")
    body = client.get("/settings/users?q=sales", headers=HX).get_data(as_text=True)
    assert 'id="user-table"' in body and "<html" not in body
    assert users["sales"].email in body and users["admin"].email not in body
    assert client.get("/settings/users?q=" + "x" * 101).status_code == 400
    assert "Add a user" not in client.get("/settings/users").get_data(as_text=True)  # managers look only


def test_sales_get_a_403_page_for_the_users_settings(client, login):
    login("sales")
    response = client.get("/settings/users")
    assert response.status_code == 403 and "<html" in response.get_data(as_text=True)


def test_add_user_form_shows_the_link_once_and_errors_inline(client, login, users):
    login("admin")
    response = client.post(
        "/settings/users/new", data={"name": "Nia", "email": "nia@acme.test", "role": "sales", "access": "invite"}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    link = re.search(r'value="(http[^"]+/set-password/[^"]+)"', body).group(1)
    assert client.get(link.split("localhost", 1)[-1]).status_code == 200
    duplicate = client.post("/settings/users/new", data={"name": "Nia", "email": "NIA@acme.test", "role": "sales"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.get_data(as_text=True)
    missing = client.post(
        "/settings/users/new", data={"name": "Pat", "email": "pat@acme.test", "role": "sales", "access": "password"}
    )
    assert missing.status_code == 422 and "Enter the initial password" in missing.get_data(as_text=True)
    bad_role = client.post("/settings/users/new", data={"name": "Pat", "email": "pat@acme.test", "role": "king"})
    assert bad_role.status_code == 422


def test_user_page_shows_its_history_and_the_deactivation_undo(client, login, org, users):
    login("admin")
    factories.make_deal(org, owner_id=users["sales"].id)
    page = client.get(f"/settings/users/{users['sales'].id}/deactivate")
    assert page.status_code == 200 and "1</strong> open deals" in page.get_data(as_text=True)
    response = client.post(
        f"/settings/users/{users['sales'].id}/deactivate", data={"reassign_to": str(users["manager"].id)}
    )
    assert response.status_code == 303
    body = client.get(f"/settings/users/{users['sales'].id}").get_data(as_text=True)
    assert "deactivated" in body.lower() and "Undo: reactivate" in body and users["manager"].name in body
    junk = client.post(f"/settings/users/{users['sales'].id}/deactivate", data={"reassign_to": "junk"})
    assert junk.status_code in (400, 422)
    assert client.post(f"/settings/users/{users['sales'].id}/reactivate?entry=junk").status_code == 400
    bad_role = client.post(f"/settings/users/{users['manager'].id}/role", data={"role": "king"})
    assert bad_role.status_code == 422


def test_organisation_settings(client, login, org, users):
    login("admin")
    assert client.get("/settings/organisation").status_code == 200
    bad = client.post(
        "/settings/organisation",
        data={"name": "", "default_currency": "XXX", "time_zone": "Mars/Olympus", "trash_retention_days": "0"},
    )
    assert bad.status_code == 422
    good = client.post(
        "/settings/organisation",
        data={"name": "Acme Ltd", "default_currency": "EUR", "time_zone": "Europe/Paris", "trash_retention_days": "14"},
    )
    assert good.status_code == 303
    db.session.refresh(org)
    assert (org.name, org.default_currency, org.time_zone, org.trash_retention_days) == (
        "Acme Ltd",
        "EUR",
        "Europe/Paris",
        14,
    )
    login("manager")
    assert client.get("/settings/organisation").status_code == 403


# --- tags ----------------------------------------------------------------------------------------


def test_tags_rename_merge_delete_and_undo(client, login, org, users):
    login("manager")
    vip, key, spare = (factories.make_tag(org, name=n) for n in ("VIP", "Key", "Spare"))
    contact = factories.make_contact(org)
    other = factories.make_contact(org)
    db.session.execute(
        contact_tags.insert(),
        [
            {"contact_id": contact.id, "tag_id": vip.id},
            {"contact_id": other.id, "tag_id": vip.id},
            {"contact_id": contact.id, "tag_id": key.id},
        ],
    )
    db.session.commit()
    assert client.post(f"/settings/tags/{vip.id}", data={"name": "Key", "color": "#112233"}).status_code == 422
    assert client.post(f"/settings/tags/{vip.id}", data={"name": "V.I.P.", "color": "red"}).status_code == 422
    assert (
        client.post(f"/settings/tags/{vip.id}", data={"name": "V.I.P.", "color": "#112233"}, headers=HX).status_code
        == 200
    )
    merged = client.post(f"/settings/tags/{vip.id}/merge", data={"into": str(key.id)}, headers=HX)
    assert merged.status_code == 200 and "merged into Key" in merged.get_data(as_text=True)
    links = set(db.session.execute(select(contact_tags.c.contact_id, contact_tags.c.tag_id)).all())
    assert links == {(contact.id, key.id), (other.id, key.id)}
    vip_id = vip.id
    db.session.expire_all()
    assert db.session.scalar(select(Tag.id).where(Tag.id == vip_id).execution_options(include_deleted=True)) is None
    deleted = client.post(f"/settings/tags/{spare.id}/delete", headers=HX)
    assert deleted.status_code == 200 and "Undo" in deleted.get_data(as_text=True)
    assert "Spare" not in client.get("/settings/tags").get_data(as_text=True)
    assert client.post(f"/settings/tags/{spare.id}/restore", headers=HX).status_code == 200
    assert "Spare" in client.get("/settings/tags").get_data(as_text=True)
    assert client.post(f"/settings/tags/{key.id}/merge", data={"into": str(key.id)}).status_code == 422
    assert client.post(f"/settings/tags/{key.id}/merge", data={"into": "junk"}).status_code == 400
    login("sales")
    assert client.get("/settings/tags").status_code == 403


def test_tags_settings_budget_does_not_grow(client, login, org, count_queries):
    login("manager")
    factories.make_tag(org)
    with count_queries() as few:
        client.get("/settings/tags")
    for _ in range(20):
        factories.make_tag(org)
    with count_queries() as many:
        client.get("/settings/tags")
    assert few.count == many.count


def test_user_page_budget_does_not_grow_with_its_history(client, login, users, count_queries, engine_name):
    login("manager")
    url = f"/settings/users/{users['sales'].id}"
    with count_queries() as few:
        assert client.get(url).status_code == 200
    admin = service(users["admin"])
    for role in ("manager", "sales", "manager", "sales"):
        admin.change_role(users["sales"].id, role=role)
    with count_queries() as many:
        body = client.get(url).get_data(as_text=True)
    assert few.count == many.count == LOGIN_STATEMENTS + 2 + tenant_statements(engine_name, commits=0), many
    assert body.count("history-updated") == 4


def test_account_and_organisation_pages_cost_the_user_load_only(client, login, count_queries):
    login("admin")
    for url in ("/account", "/settings/organisation"):
        with count_queries() as queries:
            assert client.get(url).status_code == 200
        assert queries.count == LOGIN_STATEMENTS, (url, queries)


def test_deactivating_without_handing_over_offers_reactivation_not_undo(client, login, users):
    login("admin")
    assert client.post(f"/settings/users/{users['sales'].id}/deactivate", data={"reassign_to": ""}).status_code == 303
    body = client.get(f"/settings/users/{users['sales'].id}").get_data(as_text=True)
    assert "Undo: reactivate" not in body and "Reactivate" in body
    assert client.post(f"/settings/users/{users['sales'].id}/reactivate").status_code == 303
    assert client.post(f"/settings/users/{users['sales'].id}/reactivate").status_code == 422  # already active

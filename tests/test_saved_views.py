"""Saved views (services/saved_views.py, views/saved_views.py): save, reopen, publish, reorder, default,
modify and save as new, who sees what, views of fields that no longer exist, roles, statement budgets."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import Organization, SavedView, User
from crm_web.services.saved_views import LISTS, SavedViewService, clean_state
from tests import factories
from tests.conftest import HX


@pytest.fixture
def stages(org):
    return factories.stages_of(factories.make_pipeline(org))


@pytest.fixture
def deals(org, stages, users):
    made = {
        "open_a": factories.make_deal(org, stage=stages[0], name="Alpha open", owner_id=users["sales"].id),
        "open_b": factories.make_deal(org, stage=stages[1], name="Bravo open", owner_id=users["manager"].id),
        "won": factories.make_deal(org, stage=stages[3], name="Charlie won", status="won"),
    }
    return made


def service(user) -> SavedViewService:
    return SavedViewService(factories.actor_for(user))


def fresh_user(user) -> User:
    return db.session.get(User, user.id, populate_existing=True)


def view_id_from(response) -> str:
    location = response.headers["Location"]
    return parse_qs(urlsplit(location).query)["view"][0]


# --- the service ------------------------------------------------------------------------------


def test_save_and_reopen_a_private_view(users):
    sales = users["sales"]
    view = service(sales).create("deals", name="  My   big deals ", query="f=value.greaterThan.500&sort=-value")
    assert view.name == "My big deals" and not view.shared
    assert view.query == "sort=-value&f=value.greaterThan.500" or view.query == "f=value.greaterThan.500&sort=-value"
    tabs = service(sales).tabs("deals", {})
    assert [t.name for t in tabs if not t.builtin] == ["My big deals"]
    assert [t.key for t in tabs if t.builtin] == [b.key for b in LISTS["deals"].builtins]
    opened = service(sales).open("deals", str(view.id), {})
    assert opened.tab is not None and opened.tab.can_edit and opened.tab.mine


def test_another_user_sees_an_organisation_view_but_not_a_private_one(users):
    manager, sales = users["manager"], users["sales"]
    public = service(manager).create("deals", name="Team pipeline", query="f=status.equals.open", shared=True)
    private = service(manager).create("deals", name="Manager only", query="scope=mine")
    names = [t.name for t in service(sales).tabs("deals", {})]
    assert "Team pipeline" in names and "Manager only" not in names
    assert service(sales).open("deals", str(public.id), {}).tab.can_edit is False
    with pytest.raises(NotFound):
        service(sales).open("deals", str(private.id), {})
    with pytest.raises(NotFound):  # the right id on the wrong list
        service(manager).open("contacts", str(public.id), {})


def test_another_organisations_view_is_not_found(users, other_org):
    outsider = factories.make_user(other_org, role="admin")
    theirs = service(outsider).create("deals", name="Theirs", query="", shared=True)
    with pytest.raises(NotFound):
        service(users["admin"]).open("deals", str(theirs.id), {})
    with pytest.raises(NotFound):
        service(users["admin"]).update(theirs.id, name="Mine now")
    assert "Theirs" not in [t.name for t in service(users["admin"]).tabs("deals", {})]


def test_publishing_needs_a_manager_unless_the_organisation_allows_sales(org, users):
    sales = users["sales"]
    with pytest.raises(PermissionDenied):
        service(sales).create("contacts", name="Everyone's", query="", shared=True)
    own = service(sales).create("contacts", name="Mine", query="")
    with pytest.raises(PermissionDenied):
        service(sales).update(own.id, shared=True)
    org_row = db.session.get(Organization, org.id)
    org_row.sales_can_publish_views = True
    db.session.commit()
    assert service(sales).update(own.id, shared=True).shared
    assert service(users["manager"]).create("contacts", name="Published", query="", shared=True).shared


def test_who_may_change_a_view(users):
    manager, sales, admin = users["manager"], users["sales"], users["admin"]
    shared = service(manager).create("leads", name="Hot", query="f=score.greaterThan.50", shared=True)
    private = service(sales).create("leads", name="Sales own", query="")
    with pytest.raises(PermissionDenied):
        service(sales).update(shared.id, name="Renamed")
    with pytest.raises(PermissionDenied):
        service(sales).delete(shared.id)
    assert service(admin).update(shared.id, name="Hot leads").name == "Hot leads"  # managers and admins: shared ones
    with pytest.raises(NotFound):  # another's private view is not even visible
        service(admin).update(private.id, name="Nope")


def test_names_and_lists_are_validated(users):
    with pytest.raises(ValidationError):
        service(users["sales"]).create("deals", name="   ", query="")
    with pytest.raises(ValidationError):
        service(users["sales"]).create("deals", name="x" * 81, query="")
    with pytest.raises(NotFound):
        service(users["sales"]).create("invoices", name="Nope", query="")
    stored = service(users["sales"]).create("deals", name="Only state", query="f=name.contains.a&view=x&page=3&evil=1")
    assert stored.query == "f=name.contains.a"


def test_reorder_default_and_hidden_belong_to_each_user(users):
    manager, sales = users["manager"], users["sales"]
    mine = service(sales).create("deals", name="Mine", query="scope=mine")
    shared = service(manager).create("deals", name="Shared", query="", shared=True)
    service(sales).reorder("deals", [str(shared.id), str(mine.id), "won-deals", "not-a-view", str(uuid.uuid4())])
    prefs = fresh_user(sales).view_prefs["deals"]
    assert prefs["order"] == [str(shared.id), str(mine.id), "won-deals"]
    keys = [t.key for t in service(sales).tabs("deals", prefs)]
    assert keys[:3] == [str(shared.id), str(mine.id), "won-deals"]
    service(sales).set_default("deals", str(mine.id))
    service(sales).set_hidden("deals", "closing-this-month", True, fresh_user(sales).view_prefs["deals"])
    prefs = fresh_user(sales).view_prefs["deals"]
    assert prefs["default"] == str(mine.id) and prefs["hidden"] == ["closing-this-month"]
    tabs = {t.key: t for t in service(sales).tabs("deals", prefs)}
    assert tabs[str(mine.id)].default and tabs["closing-this-month"].hidden
    assert fresh_user(manager).view_prefs == {}  # nobody else's tabs moved
    with pytest.raises(NotFound):
        service(sales).set_default("deals", "nope")


def test_delete_and_restore(users):
    sales = users["sales"]
    view = service(sales).create("companies", name="Big", query="f=employees.greaterThan.100")
    service(sales).delete(view.id)
    assert [t.name for t in service(sales).tabs("companies", {}) if not t.builtin] == []
    opened = service(sales).open("companies", str(view.id), {})
    assert opened.tab is None and opened.deleted_name == "Big"
    service(sales).restore(view.id)
    assert service(sales).open("companies", str(view.id), {}).tab is not None


def test_a_condition_on_a_field_that_no_longer_exists_is_dropped():
    cleaned = clean_state(LISTS["deals"], "f=renewalDate.equals.2026-01-01&f=status.equals.open&f=2:tier.in.a,b&q=x")
    assert cleaned.pairs == [("f", "status.equals.open"), ("q", "x")]
    assert cleaned.dropped == ["renewalDate", "tier"]
    # The whitelist decides, so a field that joins it (a custom field) is kept.
    with_custom = {**LISTS["deals"].entity_def.filter_fields(), "renewalDate": object()}
    assert clean_state(LISTS["deals"], "f=renewalDate.equals.2026-01-01", with_custom).dropped == []


# --- over HTTP ----------------------------------------------------------------------------------


def test_save_a_view_and_open_it_with_its_rows(client, login, deals):
    login("sales")
    response = client.post(
        "/views/deals", data={"name": "Open ones", "visibility": "private", "query": "f=status.equals.open&sort=name"}
    )
    assert response.status_code == 303
    view_id = view_id_from(response)
    page = client.get(f"/deals?view={view_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Alpha open" in html and "Bravo open" in html and "Charlie won" not in html
    assert "data-view-name>Open ones<" in html and "data-view-modified" not in html
    assert html.index("Alpha open") < html.index("Bravo open")
    # Page links keep the view by its id only.
    assert f'name="view" value="{view_id}"' in html
    # The CSV export of an open view exports the view's rows.
    export = client.get(f"/deals/export.csv?view={view_id}").get_data(as_text=True)
    assert "Alpha open" in export and "Charlie won" not in export


def test_modify_then_save_and_save_as_new(client, login, deals):
    user = login("manager")
    view = service(user).create("deals", name="Open", query="f=status.equals.open", shared=True)
    changed = client.get(f"/deals?view={view.id}&state=1&f=status.equals.open&f=name.contains.Alpha", headers=HX)
    body = changed.get_data(as_text=True)
    assert changed.status_code == 200 and "<html" not in body
    assert "data-view-modified" in body and "Save as new" in body and ">Save</button>" in body
    assert "Alpha open" in body and "Bravo open" not in body
    push = changed.headers["HX-Push-Url"]
    assert push.startswith(f"/deals?view={view.id}&state=1") and "name.contains.Alpha" in push
    # The same state as the view's: not modified, and the URL is the view's own.
    same = client.get(f"/deals?view={view.id}&state=1&f=status.equals.open", headers=HX)
    assert "data-view-modified" not in same.get_data(as_text=True)
    assert same.headers["HX-Push-Url"] == f"/deals?view={view.id}"
    # Save: the view now holds the changed state.
    saved = client.post(f"/views/{view.id}/save", data={"query": "f=status.equals.open&f=name.contains.Alpha"})
    assert saved.status_code == 303
    assert db.session.get(SavedView, view.id, populate_existing=True).query == (
        "f=status.equals.open&f=name.contains.Alpha"
    )
    # Save as new: a second view; the first is unchanged.
    created = client.post("/views/deals", data={"name": "Bravo only", "query": "f=name.contains.Bravo"})
    new_id = view_id_from(created)
    assert new_id != str(view.id)
    assert "Bravo open" in client.get(f"/deals?view={new_id}").get_data(as_text=True)
    assert "Alpha open" in client.get(f"/deals?view={view.id}").get_data(as_text=True)


def test_an_organisation_view_is_a_tab_for_others_and_a_private_one_is_not(client, login, users, deals):
    public = service(users["manager"]).create("deals", name="Team view", query="f=status.equals.open", shared=True)
    private = service(users["manager"]).create("deals", name="Secret view", query="")
    login("sales")
    tabs = client.get("/views/deals/tabs", headers=HX).get_data(as_text=True)
    assert 'id="view-tabs"' in tabs and "<html" not in tabs
    assert "Team view" in tabs and "Secret view" not in tabs and "My open deals" in tabs
    assert client.get(f"/deals?view={public.id}").status_code == 200
    assert client.get(f"/deals?view={private.id}").status_code == 404
    assert client.get("/views/deals/tabs").status_code == 303  # the bar alone is no page


@pytest.mark.parametrize("junk", ["junk", "12345", "x" * 100])
def test_unknown_or_malformed_view_ids_are_readable_errors(client, login, junk):
    login("sales")
    response = client.get(f"/deals?view={junk}")
    assert response.status_code in (400, 404)
    assert "view" in response.get_data(as_text=True).lower()
    assert client.get(f"/deals?view={uuid.uuid4()}").status_code == 404
    assert client.get("/views/invoices/tabs", headers=HX).status_code == 404


def test_another_organisations_view_id_is_404_everywhere(client, login, other_org):
    outsider = factories.make_user(other_org, role="admin")
    theirs = service(outsider).create("deals", name="Theirs", query="", shared=True)
    login("admin")
    assert client.get(f"/deals?view={theirs.id}").status_code == 404
    assert client.get(f"/deals/board?view={theirs.id}").status_code == 404
    assert client.post(f"/views/{theirs.id}/save", data={"name": "Mine"}).status_code == 404
    assert client.post(f"/views/{theirs.id}/delete", headers=HX).status_code == 404


def test_a_deleted_view_says_so_and_offers_the_plain_list(client, login, users, deals):
    user = login("sales")
    view = service(user).create("deals", name="Gone soon", query="f=name.contains.Alpha")
    deleted = client.post(f"/views/{view.id}/delete", data={"current": str(view.id)}, headers=HX)
    body = deleted.get_data(as_text=True)
    assert deleted.status_code == 200 and 'id="view-tabs"' in body and "Gone soon" in body  # the toast names it
    assert f"/views/{view.id}/restore" in body  # Undo
    page = client.get(f"/deals?view={view.id}").get_data(as_text=True)
    assert "was deleted" in page and "Gone soon" in page and "/deals?state=1" in page
    assert "Bravo open" in page  # the plain list
    restored = client.post(f"/views/{view.id}/restore", headers=HX)
    assert restored.status_code == 200 and "Restored the view Gone soon" in restored.get_data(as_text=True)
    assert "was deleted" not in client.get(f"/deals?view={view.id}").get_data(as_text=True)


def test_a_view_with_a_dropped_field_still_opens_and_says_which(client, login, org, users, deals):
    user = login("sales")
    view = SavedView(
        org_id=org.id,
        owner_id=user.id,
        list_key="deals",
        name="Renewals",
        query="f=renewalDate.inRange.next30Days&f=status.equals.open",
    )
    db.session.add(view)
    db.session.commit()
    response = client.get(f"/deals?view={view.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "data-view-dropped" in html and "“renewalDate”" in html and "no longer exists" in html
    assert "Alpha open" in html and "Charlie won" not in html  # the rest of the filter applies
    assert "data-view-modified" not in html


def test_default_view_opens_from_the_navigation(client, login, users, deals):
    user = login("sales")
    view = service(user).create("deals", name="Alpha", query="f=name.contains.Alpha")
    assert client.post("/views/deals/default", data={"key": str(view.id)}, headers=HX).status_code == 200
    html = client.get("/deals").get_data(as_text=True)
    assert "data-view-name>Alpha<" in html and "Bravo open" not in html
    # The plain list stays one click away, and a fragment request never jumps to the default.
    plain = client.get("/deals?state=1").get_data(as_text=True)
    assert "Bravo open" in plain and "data-view-name" not in plain
    assert "Bravo open" in client.get("/deals", headers=HX).get_data(as_text=True)
    # A deleted default quietly gives the plain list.
    service(user).delete(view.id)
    assert "Bravo open" in client.get("/deals").get_data(as_text=True)


def test_reorder_and_hide_over_http(client, login, users):
    user = login("sales")
    one = service(user).create("contacts", name="One", query="")
    two = service(user).create("contacts", name="Two", query="")
    response = client.post("/views/contacts/order", data={"key": [str(two.id), str(one.id)]}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.index(">Two") < body.index(">One")
    hidden = client.post("/views/contacts/hidden", data={"key": "customers", "hidden": "1"}, headers=HX)
    text = hidden.get_data(as_text=True)
    assert "Hidden views (1)" in text
    assert client.post("/views/contacts/hidden", data={"key": "nope", "hidden": "1"}, headers=HX).status_code == 404
    assert client.post("/views/contacts/order", data={"key": "x"}, headers=HX, csrf=False).status_code == 400


def test_rename_and_publish_an_open_view(client, login, users, deals):
    user = login("manager")
    view = service(user).create("deals", name="Draft", query="f=status.equals.open")
    page = client.get(f"/deals?view={view.id}").get_data(as_text=True)
    assert "Rename or share" in page and "only you see it" in page
    response = client.post(f"/views/{view.id}/save", data={"name": "Team open deals", "visibility": "organisation"})
    assert response.status_code == 303
    saved = db.session.get(SavedView, view.id, populate_existing=True)
    assert saved.name == "Team open deals" and saved.shared and saved.query == "f=status.equals.open"
    # Another manager may change the shared view, but not take it away from the organisation.
    other = factories.make_user(users["manager"].org, role="manager")
    with pytest.raises(PermissionDenied):
        service(other).update(view.id, shared=False)
    assert service(other).update(view.id, name="Open deals").name == "Open deals"
    login("sales")
    assert "Rename or share" not in client.get(f"/deals?view={view.id}").get_data(as_text=True)


def test_sales_cannot_publish_unless_allowed(client, login, org):
    login("sales")
    refused = client.post("/views/leads", data={"name": "All of us", "visibility": "organisation", "query": ""})
    assert refused.status_code == 403
    assert client.post("/views/leads", data={"name": "x", "visibility": "everyone"}).status_code == 400
    page = client.get("/leads").get_data(as_text=True)
    assert re.search(r'value="organisation" disabled', page)


def test_the_organisation_setting_lets_sales_publish(client, login, org):
    login("admin")
    form = {"name": org.name, "default_currency": "USD", "time_zone": "UTC", "sales_can_publish_views": "y"}
    assert client.post("/settings/organisation", data=form).status_code == 303
    assert db.session.get(Organization, org.id, populate_existing=True).sales_can_publish_views is True
    login("sales")
    created = client.post("/views/leads", data={"name": "All of us", "visibility": "organisation", "query": ""})
    assert created.status_code == 303
    assert db.session.scalar(select(SavedView.shared).where(SavedView.name == "All of us")) is True


def test_board_and_activities_views(client, login, users, deals, stages):
    user = login("manager")
    board_view = service(user).create(
        "board", name="Alpha board", query=f"pipeline={stages[0].pipeline_id}&q=Alpha", shared=True
    )
    board = client.get(f"/deals/board?view={board_view.id}").get_data(as_text=True)
    assert "Alpha open" in board and "Bravo open" not in board and "data-view-name>Alpha board<" in board
    factories.make_activity(users["manager"].org, subject="Call Ada", owner_id=user.id, type="call")
    factories.make_activity(users["manager"].org, subject="Meet Bob", owner_id=user.id, type="meeting")
    activities_view = service(user).create("activities", name="Calls", query="quick=all&f=type.equals.call")
    html = client.get(f"/activities?view={activities_view.id}").get_data(as_text=True)
    assert "Call Ada" in html and "Meet Bob" not in html
    changed = client.get(f"/activities?view={activities_view.id}&state=1&quick=all&f=type.equals.meeting")
    body = changed.get_data(as_text=True)
    assert "Meet Bob" in body and "Call Ada" not in body and "data-view-modified" in body
    saved_state = re.findall(r'name="query" value="([^"]*)"', body)
    assert saved_state and all(state.count("quick") == 1 for state in saved_state), saved_state
    # The quick views are the activities' built-in views, under their old URLs.
    assert "Meet Bob" in client.get("/activities?view=all").get_data(as_text=True)


def _statements(client, count_queries, url, headers=None) -> int:
    with count_queries() as q:
        response = client.get(url, headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return q.count


@pytest.mark.parametrize("headers", [None, HX])
def test_opening_a_saved_view_costs_at_most_one_statement_more(client, login, users, deals, count_queries, headers):
    user = login("manager")
    state = "sort=name&f=status.equals.open"
    view = service(user).create("deals", name="Budget", query=state, shared=True)
    client.get("/deals")  # warm the pipeline cache
    plain = _statements(client, count_queries, f"/deals?{state}", headers)
    saved = _statements(client, count_queries, f"/deals?view={view.id}", headers)
    modified = _statements(client, count_queries, f"/deals?view={view.id}&state=1&sort=-name", headers)
    assert saved <= plain + 1 and modified <= plain + 1
    builtin = _statements(client, count_queries, "/deals?view=won-deals", headers)
    assert builtin <= _statements(client, count_queries, "/deals?f=status.equals.won", headers)
    board_view = service(user).create("board", name="Board budget", query="q=open")
    client.get("/deals/board?q=open")  # warm the board's cached pipeline and headers
    assert _statements(client, count_queries, f"/deals/board?view={board_view.id}", headers) <= (
        _statements(client, count_queries, "/deals/board?q=open", headers) + 1
    )


def test_the_tab_bar_is_one_statement_whatever_the_number_of_views(client, login, users, count_queries):
    user = login("manager")
    service(user).create("contacts", name="First", query="")
    few = _statements(client, count_queries, "/views/contacts/tabs", HX)
    for i in range(12):
        service(user).create("contacts", name=f"View {i}", query="scope=mine", shared=bool(i % 2))
    many = _statements(client, count_queries, "/views/contacts/tabs", HX)
    assert few == many <= 2  # the user, the views with their owners' names


def _inline_bar(html: str) -> bool:
    """Whether a list page rendered its whole tab bar (no request of its own for it)."""
    return 'id="view-tabs"' in html and "/views/" not in html.split('id="view-tabs"', 1)[1].split(">", 1)[0]


@pytest.mark.parametrize("list_url, list_key", [("/contacts", "contacts"), ("/deals/board", "board")])
def test_a_list_arrives_with_its_whole_tab_bar_for_one_statement_then_none(
    client, login, users, deals, count_queries, list_url, list_key
):
    """The page renders its tab bar itself (no request of its own after it): reading the views costs
    it one statement, which fills the cache, and the next page none."""
    user = login("manager")
    service(user).create(list_key, name="Mine only", query="")
    client.get(list_url)  # warm the list's own caches (the board's pipeline and headers)
    service(user).create(list_key, name="Newer", query="scope=mine")  # a new generation of the tabs
    with count_queries() as cold:
        page = client.get(list_url).get_data(as_text=True)
    assert _inline_bar(page) and "Mine only" in page and "Newer" in page and "data-sortable" in page
    assert 'hx-trigger="load"' not in page
    assert any("saved_views" in statement for statement in cold.statements)
    with count_queries() as warm:
        page = client.get(list_url).get_data(as_text=True)
    assert _inline_bar(page) and "Newer" in page
    assert warm.count == cold.count - 1  # the whole bar from the cache: no statement
    assert not any("saved_views" in statement for statement in warm.statements)


def test_the_inline_tab_bar_follows_every_change_of_views_and_owners(client, login, users):
    manager = users["manager"]
    login("sales")
    client.get("/views/contacts/tabs", headers=HX)
    assert _inline_bar(client.get("/contacts").get_data(as_text=True))
    shared = service(manager).create("contacts", name="Team list", query="", shared=True)
    # A new view starts a new generation of the tabs: the page never shows the bar without it.
    page = client.get("/contacts").get_data(as_text=True)
    assert not _inline_bar(page) or "Team list" in page
    assert "Team list" in client.get("/views/contacts/tabs", headers=HX).get_data(as_text=True)
    assert "Team list" in client.get("/contacts").get_data(as_text=True)
    manager_row = fresh_user(manager)
    manager_row.name = "Renamed Manager"
    db.session.commit()
    client.get("/views/contacts/tabs", headers=HX)
    assert "Shared with the organisation by Renamed Manager" in client.get("/contacts").get_data(as_text=True)
    service(manager).delete(shared.id)
    client.get("/views/contacts/tabs", headers=HX)
    page = client.get("/contacts").get_data(as_text=True)
    assert _inline_bar(page) and "Team list" not in page

"""The trash pages: roles, page vs fragment, query budgets, restore and purge with a confirmation,
history on the trash entry, junk input and CSRF."""

import re
import uuid

import pytest
from sqlalchemy import func, select

from crm_web.extensions import db
from crm_web.models import Contact, Deal
from crm_web.services.base import Actor, BaseService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS


class Contacts(BaseService[Contact]):
    model = Contact
    entity_type = "contact"
    WRITABLE_FIELDS = frozenset({"last_name"})


class Deals(BaseService[Deal]):
    model = Deal
    entity_type = "deal"


def exists(model, entity_id):
    return (
        db.session.scalar(
            select(func.count()).select_from(model).where(model.id == entity_id).execution_options(include_deleted=True)
        )
        == 1
    )


def is_deleted(model, entity_id):
    return (
        db.session.scalar(select(model.deleted_at).where(model.id == entity_id).execution_options(include_deleted=True))
        is not None
    )


@pytest.fixture
def deleted(org, users):
    """A deleted contact (with an update in its history) and a deleted deal."""
    admin = Actor.of(users["admin"])
    contact = factories.make_contact(org, first_name="Peter", last_name="Gibbons")
    Contacts(admin).update(contact.id, last_name="Gibbons-Smith")
    Contacts(admin).delete(contact.id)
    deal = factories.make_deal(org, name="Stapler <b>deal</b>")
    Deals(Actor.of(users["sales"])).delete(deal.id)
    return {"contact": contact, "deal": deal}


def key(obj, entity_type):
    return f"{entity_type}:{obj.id}"


# --- index ---------------------------------------------------------------------------------


def test_admin_sees_the_trash_page(client, login, deleted, users):
    login("admin")
    response = client.get("/trash")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html and 'id="trash-table"' in html
    assert "Peter Gibbons-Smith" in html and users["sales"].name in html
    assert "Stapler &lt;b&gt;deal&lt;/b&gt;" in html  # escaped
    assert "Delete permanently" in html and "Restore selected" in html
    assert "HX-Request" in response.headers["Vary"]


def test_fragment_is_the_table_only(client, login, deleted):
    login("manager")
    response = client.get("/trash?type=deal", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<div id="trash-table"')
    assert "Stapler" in html and "Peter" not in html
    assert "HX-Request" in response.headers["Vary"]


def test_manager_views_without_restore_or_delete_buttons(client, login, deleted):
    login("manager")
    html = client.get("/trash").get_data(as_text=True)
    assert "Peter Gibbons-Smith" in html
    assert "Delete permanently" not in html and "Restore" not in html


def test_sales_cannot_open_the_trash(client, login, deleted):
    login("sales")
    assert client.get("/trash").status_code == 403
    assert client.get("/trash", headers=HX).status_code == 403
    assert client.get(f"/trash/deal/{deleted['deal'].id}").status_code == 403


def test_search_and_type_filter_keep_state_in_links(client, login, org, users):
    admin = Actor.of(users["admin"])
    for n in range(12):
        Deals(admin).delete(factories.make_deal(org, name=f"Widget {n}").id)
    Contacts(admin).delete(factories.make_contact(org, first_name="Widget", last_name="Person").id)
    login("admin")
    html = client.get("/trash?type=deal&q=widget&per_page=10", headers=HX).get_data(as_text=True)
    assert "1–10 of 12" in html and "Widget Person" not in html
    assert "/trash?q=widget&amp;per_page=10&amp;page=2&amp;type=deal" in html


@pytest.mark.parametrize("query", ["page=abc", "per_page=0", "type=users", "q=" + "x" * 300])
def test_bad_parameters_are_a_400(client, login, query):
    login("admin")
    assert client.get(f"/trash?{query}").status_code == 400


def test_index_budget_is_constant(client, login, org, users, count_queries):
    admin = Actor.of(users["admin"])
    Contacts(admin).delete(factories.make_contact(org).id)
    login("admin")
    with count_queries() as one:
        assert client.get("/trash").status_code == 200
    for _ in range(30):
        Deals(admin).delete(factories.make_deal(org).id)
    with count_queries() as many:
        assert client.get("/trash?per_page=50").status_code == 200
    # LOGIN_STATEMENTS + the count + one UNION ALL page query (with who deleted each row).
    assert one.count == many.count == LOGIN_STATEMENTS + 2, many


def test_empty_trash_costs_the_count_only(client, login, count_queries):
    login("manager")
    with count_queries() as q:
        html = client.get("/trash").get_data(as_text=True)
    assert "The trash is empty" in html and q.count == LOGIN_STATEMENTS + 1


# --- detail / history ------------------------------------------------------------------------


def test_trash_entry_shows_its_history(client, login, deleted, users, count_queries):
    login("manager")
    url = f"/trash/contact/{deleted['contact'].id}"
    with count_queries() as q:
        page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert "moved this to the trash" in html and "Gibbons-Smith" in html and "<del>Gibbons</del>" in html
    assert q.count == LOGIN_STATEMENTS + 2  # the record, its history with actors
    fragment = client.get(url, headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="trash-entry"') and "<html" not in fragment


@pytest.mark.parametrize(
    "path", ["/trash/user/{id}", "/trash/deal/not-a-uuid", "/trash/deal/{random}", "/trash/contact/{deal}"]
)
def test_junk_or_wrong_detail_urls_are_404(client, login, deleted, path):
    login("admin")
    url = path.format(id=deleted["deal"].id, random=uuid.uuid4(), deal=deleted["deal"].id)
    assert client.get(url).status_code == 404


def test_another_orgs_trash_is_invisible(client, login, deleted, other_org):
    outsider = factories.make_user(other_org, role="admin")
    login(outsider)
    html = client.get("/trash").get_data(as_text=True)
    assert "Peter" not in html and "The trash is empty" in html
    assert client.get(f"/trash/deal/{deleted['deal'].id}").status_code == 404
    assert client.post("/trash/restore", data={"item": key(deleted["deal"], "deal")}).status_code == 404
    assert client.get(f"/trash/purge?item={key(deleted['deal'], 'deal')}").status_code == 404
    assert client.post("/trash/purge", data={"item": key(deleted["deal"], "deal")}).status_code == 404
    assert is_deleted(Deal, deleted["deal"].id)


# --- restore -------------------------------------------------------------------------------


def test_htmx_restore_answers_with_a_toast_and_an_event(client, login, deleted):
    login("admin")
    response = client.post(
        "/trash/restore", data={"item": [key(deleted["deal"], "deal"), key(deleted["contact"], "contact")]}, headers=HX
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Restored 2 records." in html and 'hx-swap-oob="beforeend:#toasts"' in html
    assert "trash-changed" in response.headers["HX-Trigger"]
    assert not is_deleted(Deal, deleted["deal"].id) and not is_deleted(Contact, deleted["contact"].id)


def test_plain_restore_redirects_with_a_message(client, login, deleted):
    login("admin")
    response = client.post("/trash/restore", data={"item": key(deleted["deal"], "deal")})
    assert response.status_code == 303 and response.headers["Location"] == "/trash"
    assert "Restored Stapler" in client.get("/trash").get_data(as_text=True)


def test_only_the_deleter_or_an_admin_restores_from_the_trash(client, login, deleted):
    """The one restore policy (services/trash.py): the sales user deleted the deal, so a manager may not
    restore it, the sales user may; the admin's delete of the contact is the admin's to restore."""
    login("manager")
    assert client.post("/trash/restore", data={"item": key(deleted["deal"], "deal")}).status_code == 403
    assert client.post("/trash/restore", data={"item": key(deleted["contact"], "contact")}).status_code == 403
    assert is_deleted(Deal, deleted["deal"].id)
    login("sales")
    assert client.post("/trash/restore", data={"item": key(deleted["contact"], "contact")}).status_code == 403
    assert client.post("/trash/restore", data={"item": key(deleted["deal"], "deal")}).status_code == 303
    assert not is_deleted(Deal, deleted["deal"].id)


@pytest.mark.parametrize(
    "items,status",
    [
        ([], 422),
        (["deal:123"], 400),
        (["user:" + str(uuid.UUID(int=1))], 400),
        (["nonsense"], 400),
        (["deal:" + str(uuid.UUID(int=7))], 404),
    ],
)
def test_bad_selections(client, login, deleted, items, status):
    login("admin")
    assert client.post("/trash/restore", data={"item": items}, headers=HX).status_code == status
    assert client.post("/trash/purge", data={"item": items}, headers=HX).status_code == status


def test_csrf_is_enforced(client, login, deleted):
    login("admin")
    assert client.post("/trash/restore", data={"item": key(deleted["deal"], "deal")}, csrf=False).status_code == 400
    assert client.post("/trash/purge", data={"item": key(deleted["deal"], "deal")}, csrf=False).status_code == 400
    assert is_deleted(Deal, deleted["deal"].id)


# --- permanent delete ----------------------------------------------------------------------


def test_confirmation_names_what_will_go_and_deletes_nothing(client, login, deleted):
    login("admin")
    url = f"/trash/purge?item={key(deleted['deal'], 'deal')}&item={key(deleted['contact'], 'contact')}"
    page = client.get(url).get_data(as_text=True)
    assert "Delete 2 records permanently?" in page and "Peter Gibbons-Smith" in page and "Stapler" in page
    assert page.count('name="item"') == 2
    assert "hx-post" not in page.split('id="trash-confirm"')[1]  # on its own page: a plain form, PRG
    fragment = client.get(url, headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="trash-confirm"') and "<html" not in fragment
    assert 'hx-post="/trash/purge"' in fragment
    assert exists(Deal, deleted["deal"].id)


def test_admin_purges_after_confirming(client, login, deleted):
    login("admin")
    response = client.post("/trash/purge", data={"item": key(deleted["deal"], "deal")}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and '<div id="trash-confirm"></div>' in html
    assert "Permanently deleted Stapler" in html and "trash-changed" in response.headers["HX-Trigger"]
    assert not exists(Deal, deleted["deal"].id) and exists(Contact, deleted["contact"].id)


def test_plain_purge_redirects(client, login, deleted):
    login("admin")
    response = client.post("/trash/purge", data={"item": key(deleted["contact"], "contact")})
    assert response.status_code == 303 and not exists(Contact, deleted["contact"].id)


def test_managers_cannot_purge(client, login, deleted):
    login("manager")
    assert client.get(f"/trash/purge?item={key(deleted['deal'], 'deal')}").status_code == 403
    assert client.post("/trash/purge", data={"item": key(deleted["deal"], "deal")}).status_code == 403
    assert exists(Deal, deleted["deal"].id)


def test_restore_and_purge_budgets_are_constant(client, login, org, users, count_queries):
    admin = Actor.of(users["admin"])
    small = [factories.make_contact(org).id for _ in range(1)]
    large = [factories.make_contact(org).id for _ in range(15)]
    Contacts(admin).delete_many(small + large)
    login("admin")
    with count_queries() as one:
        client.post("/trash/restore", data={"item": [f"contact:{i}" for i in small]}, headers=HX)
    with count_queries() as many:
        client.post("/trash/restore", data={"item": [f"contact:{i}" for i in large]}, headers=HX)
    # login, resolve, UPDATE, history INSERT
    assert one.count == many.count == LOGIN_STATEMENTS + 3, many
    Contacts(admin).delete_many(small + large)
    with count_queries() as purge_one:
        client.post("/trash/purge", data={"item": [f"contact:{i}" for i in small]}, headers=HX)
    with count_queries() as purge_many:
        client.post("/trash/purge", data={"item": [f"contact:{i}" for i in large]}, headers=HX)
    # login, resolve, history INSERT, DELETE
    assert purge_one.count == purge_many.count == LOGIN_STATEMENTS + 3, purge_many


def test_nav_link_only_for_managers_and_admins(client, login):
    login("sales")
    assert not re.search(r'href="/trash"', client.get("/").get_data(as_text=True))
    login("manager")
    assert re.search(r'href="/trash"', client.get("/").get_data(as_text=True))


# --- components ----------------------------------------------------------------------------


def render_macro(app, source, **context):
    with app.test_request_context():
        return app.jinja_env.from_string(source).render(**context)


def test_history_macro_renders_every_kind_of_entry(app, org, users):
    from crm_web.models import RecordHistory, utcnow

    def entry(action, changes=None, actor=users["admin"]):
        return RecordHistory(
            org_id=org.id,
            entity_type="deal",
            entity_id=uuid.uuid4(),
            action=action,
            changes=changes or {},
            actor=actor,
            created_at=utcnow(),
        )

    entries = [
        entry("created"),
        entry("updated", {"name": ["Old <i>", "New"], "stage_id": ["a", "b"], "probability": [None, 40]}),
        entry("moved", {"stage": ["Proposal", "Won"]}),
        entry("converted"),
        entry("deleted", {"bulk": True}),
        entry("restored", {"bulk": True, "from_trash": True}),
        entry("purged", actor=None),
    ]
    html = render_macro(
        app, '{% from "components/history.html" import history_items %}{{ history_items(e) }}', e=entries
    )
    for text in (
        "created this",
        "moved this to the trash",
        "restored this from the trash",
        "converted this",
        "deleted this permanently",
        "(with other records)",
        "<strong>System</strong>",
        "<del>Old &lt;i&gt;</del>",
        "<ins>New</ins>",
        "<del>empty</del>",
        "<ins>40</ins>",
        "<del>Proposal</del>",
    ):
        assert text in html, text
    assert "Stage id" in html and ">a<" not in html  # ids are not shown raw
    assert "No changes recorded yet." in render_macro(
        app, '{% from "components/history.html" import history_items %}{{ history_items([]) }}'
    )


def test_linked_record_shows_a_trashed_company_as_deleted(app, org, users):
    from sqlalchemy.orm import joinedload

    from crm_web.models import Company

    class Companies(BaseService[Company]):
        model = Company
        entity_type = "company"

    company = factories.make_company(org, name="Umbrella")
    deal = factories.make_deal(org, company_id=company.id)
    source = (
        '{% from "components/history.html" import linked_record %}'
        '{{ linked_record(d.company, d.company_id, "/companies/x", "company") }}'
    )

    def load():
        db.session.expunge_all()
        return db.session.scalars(select(Deal).options(joinedload(Deal.company)).where(Deal.id == deal.id)).one()

    assert '<a href="/companies/x">Umbrella</a>' in render_macro(app, source, d=load())
    Companies(Actor.of(users["admin"])).delete(company.id)
    assert "(deleted company)" in render_macro(app, source, d=load())


# --- one restore policy, one restore code path ----------------------------------------------------


def test_the_per_record_undo_rehomes_a_deal_whose_stage_is_gone_like_the_trash(client, login, org, users):
    """The deal's own restore (the toast's Undo) is the trash's restore: a deal whose pipeline went
    meanwhile lands in the default pipeline's first stage, and the history says so."""
    from crm_web.models import Pipeline

    default = factories.make_pipeline(org, name="Main", is_default=True)
    gone = factories.make_pipeline(org, name="Gone", is_default=False)
    deal = factories.make_deal(org, pipeline=gone, name="Homeless", owner_id=users["sales"].id)
    Deals(Actor.of(users["sales"])).delete(deal.id)
    db.session.delete(db.session.get(Pipeline, gone.id))
    db.session.commit()
    login("sales")
    assert client.post(f"/deals/{deal.id}/restore").status_code == 303
    row = db.session.execute(select(Deal.pipeline_id, Deal.stage_id, Deal.deleted_at).where(Deal.id == deal.id)).one()
    assert tuple(row) == (default.id, factories.stages_of(default)[0].id, None)


def test_a_manager_restores_their_own_deletes_from_the_trash_page_and_only_those(client, login, org, users):
    mine = factories.make_contact(org, first_name="Mine")
    theirs = factories.make_contact(org, first_name="Theirs")
    Contacts(Actor.of(users["manager"])).delete(mine.id)
    Contacts(Actor.of(users["admin"])).delete(theirs.id)
    login("manager")
    html = client.get("/trash").get_data(as_text=True)
    buttons = re.findall(r'hx-vals=\'\{"item": "contact:([0-9a-f-]+)"\}\'', html)
    assert buttons == [str(mine.id)], buttons  # a Restore button on the manager's own delete only
    assert "Delete permanently" not in html and "Restore selected" not in html  # admins only
    detail = client.get(f"/trash/contact/{theirs.id}").get_data(as_text=True)
    assert ">Restore</button>" not in detail
    assert ">Restore</button>" in client.get(f"/trash/contact/{mine.id}").get_data(as_text=True)
    assert client.post("/trash/restore", data={"item": f"contact:{theirs.id}"}).status_code == 403
    assert client.post("/trash/restore", data={"item": f"contact:{mine.id}"}).status_code == 303
    assert not is_deleted(Contact, mine.id) and is_deleted(Contact, theirs.id)

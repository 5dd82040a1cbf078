"""Real races on PostgreSQL: several threads, each its own client and connection, send the same change at
the same moment. A race is answered with the idempotent success or a 409, never a 500, and the data (and
its history) says what happened exactly once (docs/security.md, "Races").

The app here runs on a database of its own with real commits (no test transaction to hide behind).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text

from crm_web.extensions import db
from crm_web.models import Contact, Pipeline, RecordHistory, Tag, contact_tags
from tests import factories
from tests.conftest import HX, CSRFClient, build_app, postgres_database

THREADS = 6
HX_HEADERS = HX
ROUNDS = 3


@dataclass
class RaceWorld:
    app: Any
    url: str
    org: uuid.UUID
    admin: Any
    manager: Any
    sales: Any
    contacts: list[uuid.UUID]
    tag: uuid.UUID
    pipelines: list[uuid.UUID]


@pytest.fixture(scope="module")
def race():
    with postgres_database("crm_race") as url:
        application = build_app(url)
        application.test_client_class = CSRFClient
        with application.app_context():
            org = factories.make_org("race")
            users = {role: factories.make_user(org, role=role) for role in ("admin", "manager", "sales")}
            contacts = [factories.make_contact(org).id for _ in range(3)]
            tag = factories.make_tag(org, name="Raced").id
            pipelines = [factories.make_pipeline(org, name=f"P{i}", is_default=i == 0).id for i in range(3)]
            world = RaceWorld(
                application,
                url,
                org.id,
                users["admin"].get_id(),
                users["manager"].get_id(),
                users["sales"].get_id(),
                contacts,
                tag,
                pipelines,
            )
            db.session.remove()
        yield world
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def client_as(world: RaceWorld, user_id: str) -> CSRFClient:
    client = world.app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    return client


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # reported by the assertions, not lost in a thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def statuses(responses: list[Any]) -> list[int | str]:
    return [r.status_code if hasattr(r, "status_code") else repr(r) for r in responses]


def scalar(world: RaceWorld, stmt: Any) -> Any:
    with world.app.app_context():
        try:
            return db.session.scalar(stmt)
        finally:
            db.session.remove()


def execute(world: RaceWorld, stmt: Any) -> None:
    with world.app.app_context():
        db.session.execute(stmt)
        db.session.commit()
        db.session.remove()


def tag_history(world: RaceWorld, contact_id: uuid.UUID) -> int:
    rows = []
    with world.app.app_context():
        rows = db.session.scalars(
            select(RecordHistory.changes).where(
                RecordHistory.entity_type == "contact",
                RecordHistory.entity_id == contact_id,
                RecordHistory.action == "updated",
            )
        ).all()
        db.session.remove()
    return sum(1 for changes in rows if "tags" in (changes or {}))


# --- tags ------------------------------------------------------------------------------------


def test_parallel_assigns_of_one_tag_link_it_once(race):
    contact = race.contacts[0]
    clients = [client_as(race, race.admin) for _ in range(THREADS)]
    for _round in range(ROUNDS):
        execute(race, contact_tags.delete().where(contact_tags.c.contact_id == contact))
        before = tag_history(race, contact)
        responses = all_at_once(
            [lambda c=c: c.post(f"/tags/contact/{contact}/assign", data={"tag_id": str(race.tag)}) for c in clients]
        )
        assert statuses(responses) == [200] * THREADS
        links = select(func.count()).select_from(contact_tags).where(contact_tags.c.contact_id == contact)
        assert scalar(race, links) == 1
        assert tag_history(race, contact) == before + 1  # only the request that linked it says so


def test_parallel_assigns_by_a_new_name_make_one_tag(race):
    contact = race.contacts[1]
    clients = [client_as(race, race.admin) for _ in range(THREADS)]
    for round_number in range(ROUNDS):
        name = f"New {round_number} {uuid.uuid4().hex[:6]}"
        responses = all_at_once(
            [
                lambda c=c, n=name: c.post(f"/tags/contact/{contact}/assign", data={"name": n, "color": "#112233"})
                for c in clients
            ]
        )
        assert statuses(responses) == [200] * THREADS
        assert scalar(race, select(func.count()).select_from(Tag).where(Tag.name == name)) == 1
        tagged = (
            select(func.count())
            .select_from(contact_tags)
            .join(Tag, Tag.id == contact_tags.c.tag_id)
            .where(contact_tags.c.contact_id == contact, Tag.name == name)
        )
        assert scalar(race, tagged) == 1


def test_parallel_bulk_tags_of_the_same_contacts(race):
    clients = [client_as(race, race.manager) for _ in range(THREADS)]
    ids = [str(c) for c in race.contacts]
    for _round in range(ROUNDS):
        execute(race, contact_tags.delete().where(contact_tags.c.tag_id == race.tag))
        responses = all_at_once(
            [lambda c=c: c.post("/contacts/bulk/tag", data={"ids": ids, "tag_id": str(race.tag)}) for c in clients]
        )
        assert all(isinstance(s, int) and s < 400 for s in statuses(responses)), statuses(responses)
        tagged = select(func.count()).select_from(contact_tags).where(contact_tags.c.tag_id == race.tag)
        assert scalar(race, tagged) == len(ids)


def test_a_link_committed_between_the_check_and_the_insert_is_no_error(race):
    """The race made certain: another connection links the tag just before this request's INSERT."""
    contact = race.contacts[2]
    execute(race, contact_tags.delete().where(contact_tags.c.contact_id == contact))
    other = create_engine(race.url)
    fired = []

    def link_first(conn, cursor, statement, parameters, context, executemany):
        if not fired and statement.lstrip().upper().startswith("INSERT INTO CONTACT_TAGS"):
            fired.append(True)
            with other.begin() as connection:
                connection.execute(contact_tags.insert().values(contact_id=contact, tag_id=race.tag))

    with race.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", link_first)
    try:
        before = tag_history(race, contact)
        response = client_as(race, race.admin).post(f"/tags/contact/{contact}/assign", data={"tag_id": str(race.tag)})
    finally:
        event.remove(engine, "before_cursor_execute", link_first)
        other.dispose()
    assert fired and response.status_code == 200
    assert tag_history(race, contact) == before  # the other writer linked it, not this request


# --- the default pipeline ------------------------------------------------------------------------


def test_parallel_set_default_leaves_exactly_one_default(race):
    clients = [client_as(race, race.admin) for _ in range(THREADS)]
    for round_number in range(ROUNDS):
        targets = [race.pipelines[1 + (i + round_number) % 2] for i in range(THREADS)]
        responses = all_at_once(
            [lambda c=c, p=p: c.post(f"/pipelines/{p}/default") for c, p in zip(clients, targets, strict=True)]
        )
        assert all(isinstance(s, int) and (s < 400 or s == 409) for s in statuses(responses)), statuses(responses)
        defaults = select(func.count()).select_from(Pipeline).where(Pipeline.org_id == race.org, Pipeline.is_default)
        assert scalar(race, defaults) == 1
    execute(race, text("SELECT 1"))


def test_setting_the_default_twice_at_once_is_one_change(race):
    target = race.pipelines[0]
    execute(race, Pipeline.__table__.update().where(Pipeline.org_id == race.org).values(is_default=False))
    execute(race, Pipeline.__table__.update().where(Pipeline.id == race.pipelines[1]).values(is_default=True))
    clients = [client_as(race, race.admin) for _ in range(THREADS)]
    responses = all_at_once([lambda c=c: c.post(f"/pipelines/{target}/default") for c in clients])
    assert all(isinstance(s, int) and s < 400 for s in statuses(responses)), statuses(responses)
    changes = (
        select(func.count())
        .select_from(RecordHistory)
        .where(
            RecordHistory.entity_type == "pipeline",
            RecordHistory.entity_id == target,
            RecordHistory.action == "updated",
        )
    )
    assert scalar(race, changes) == 1
    assert scalar(race, select(Pipeline.is_default).where(Pipeline.id == target)) is True


def test_a_cache_library_failure_after_the_commit_is_not_an_error(race, monkeypatch):
    """The change is committed before the new cache generations are stored: the cache library breaking
    then (an in-process cache raced by threads) must not turn the committed change into a 500."""
    from crm_web.extensions import cache
    from crm_web.services.cache import breaker

    def broken(*args, **kwargs):
        raise RuntimeError("dictionary changed size during iteration")

    monkeypatch.setattr(cache, "set", broken)
    try:
        response = client_as(race, race.admin).post(f"/pipelines/{race.pipelines[2]}/default")
    finally:
        monkeypatch.undo()
        breaker.reset()
    assert response.status_code < 400
    assert scalar(race, select(Pipeline.is_default).where(Pipeline.id == race.pipelines[2])) is True


def test_contacts_are_untouched_by_the_races(race):
    assert scalar(race, select(func.count()).select_from(Contact).where(Contact.org_id == race.org)) == 3


# --- data that stays true: delete, restore and purge change only rows in the expected state ------------


def new_contacts(world: RaceWorld, count: int, **values: Any) -> list[uuid.UUID]:
    with world.app.app_context():
        org = db.session.get(factories.Organization, world.org)
        ids = [factories.make_contact(org, **values).id for _ in range(count)]
        db.session.remove()
    return ids


def history_actions(world: RaceWorld, contact_id: uuid.UUID) -> list[str]:
    with world.app.app_context():
        actions = db.session.scalars(
            select(RecordHistory.action)
            .where(RecordHistory.entity_type == "contact", RecordHistory.entity_id == contact_id)
            .order_by(RecordHistory.created_at)
        ).all()
        db.session.remove()
    return list(actions)


def contact_row(world: RaceWorld, contact_id: uuid.UUID) -> Any:
    with world.app.app_context():
        row = db.session.execute(
            select(Contact.deleted_at, Contact.deleted_by_id)
            .where(Contact.id == contact_id)
            .execution_options(include_deleted=True)
        ).first()
        db.session.remove()
    return row


def user_uuid(user_id: str) -> uuid.UUID:
    """The user's id from a session id ("<uuid>.<session version>")."""
    return uuid.UUID(user_id.split(".")[0])


def test_parallel_deletes_keep_the_first_deleter_and_their_undo(race):
    users = [race.admin, race.manager]
    for contact in new_contacts(race, ROUNDS):
        clients = [client_as(race, users[i % 2]) for i in range(THREADS)]
        responses = all_at_once(
            [lambda c=c, u=f"/contacts/{contact}/delete": c.post(u, headers=HX_HEADERS) for c in clients]
        )
        codes = statuses(responses)
        assert all(s in (200, 404, 409) for s in codes), codes
        assert codes.count(200) == 1, codes
        winner = users[codes.index(200) % 2]
        assert contact_row(race, contact).deleted_by_id == user_uuid(winner)
        assert history_actions(race, contact).count("deleted") == 1
        undo = client_as(race, winner).post(f"/contacts/{contact}/restore", headers=HX_HEADERS)
        assert undo.status_code == 204
        assert contact_row(race, contact).deleted_at is None


def test_parallel_bulk_deletes_write_one_delete_each(race):
    contacts = new_contacts(race, 6)
    clients = [client_as(race, race.admin if i % 2 else race.manager) for i in range(THREADS)]
    ids = [str(c) for c in contacts]
    responses = all_at_once([lambda c=c: c.post("/contacts/bulk/delete", data={"ids": ids}) for c in clients])
    assert all(isinstance(s, int) and s < 400 for s in statuses(responses)), statuses(responses)
    for contact in contacts:
        assert history_actions(race, contact).count("deleted") == 1


def _in_the_trash(world: RaceWorld, by: str) -> uuid.UUID:
    contact = new_contacts(world, 1)[0]
    assert client_as(world, by).post(f"/contacts/{contact}/delete", headers=HX_HEADERS).status_code == 200
    return contact


def test_an_undo_racing_a_purge_leaves_the_record_and_its_history_agreeing(race):
    for _round in range(ROUNDS * 2):
        contact = _in_the_trash(race, race.admin)
        undo, purge = client_as(race, race.admin), client_as(race, race.admin)
        restore_url, item = f"/contacts/{contact}/restore", {"item": f"contact:{contact}"}
        responses = all_at_once(
            [
                lambda u=undo, url=restore_url: u.post(url, headers=HX_HEADERS),
                lambda p=purge, data=item: p.post("/trash/purge", data=data, headers=HX_HEADERS),
            ]
        )
        codes = statuses(responses)
        assert all(s in (200, 204, 404) for s in codes), codes
        actions = history_actions(race, contact)
        row = contact_row(race, contact)
        if row is None:  # purged: the history says so once, and no restore after the delete
            assert actions[-1] == "purged" and actions.count("purged") == 1 and "restored" not in actions
        else:  # restored: live, and nothing says purged
            assert row.deleted_at is None and "purged" not in actions and actions[-1] == "restored"


def _commit_first(world: RaceWorld, prefix: str, statement: Any) -> Callable[[], None]:
    """Make a race certain: just before this request's first statement starting with `prefix`, another
    connection commits `statement`. Returns the function that removes the hook; `fired` on it."""
    other = create_engine(world.url)
    fired: list[bool] = []

    def first(conn, cursor, sql, parameters, context, executemany):
        if not fired and sql.lstrip().upper().startswith(prefix):
            fired.append(True)
            with other.begin() as connection:
                connection.execute(statement)

    with world.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", first)

    def remove() -> None:
        event.remove(engine, "before_cursor_execute", first)
        other.dispose()
        assert fired, f"no {prefix} statement ran"

    return remove


def test_a_delete_that_lost_the_race_does_not_overwrite_the_deleter(race):
    contact = new_contacts(race, 1)[0]
    table = Contact.__table__
    first = user_uuid(race.manager)
    done = _commit_first(
        race,
        "UPDATE CONTACTS",
        table.update().where(table.c.id == contact).values(deleted_at=func.now(), deleted_by_id=first),
    )
    try:
        response = client_as(race, race.admin).post(f"/contacts/{contact}/delete", headers=HX_HEADERS)
    finally:
        done()
    assert response.status_code == 409
    assert contact_row(race, contact).deleted_by_id == first
    assert "deleted" not in history_actions(race, contact)  # the other writer's (a raw statement) is not ours
    undo = client_as(race, race.manager).post(f"/contacts/{contact}/restore", headers=HX_HEADERS)
    assert undo.status_code == 204


def test_a_purge_that_lost_the_race_to_an_undo_writes_no_purge(race):
    contact = _in_the_trash(race, race.admin)
    table = Contact.__table__
    done = _commit_first(
        race, "DELETE FROM CONTACTS", table.update().where(table.c.id == contact).values(deleted_at=None)
    )
    try:
        response = client_as(race, race.admin).post(
            "/trash/purge", data={"item": f"contact:{contact}"}, headers=HX_HEADERS
        )
    finally:
        done()
    assert response.status_code == 200
    assert contact_row(race, contact).deleted_at is None
    assert "purged" not in history_actions(race, contact)


def test_an_undo_that_lost_the_race_to_a_purge_writes_no_restore(race):
    contact = _in_the_trash(race, race.admin)
    table = Contact.__table__
    done = _commit_first(race, "UPDATE CONTACTS", table.delete().where(table.c.id == contact))
    try:
        response = client_as(race, race.admin).post(f"/contacts/{contact}/restore", headers=HX_HEADERS)
    finally:
        done()
    assert response.status_code == 404
    assert contact_row(race, contact) is None
    assert "restored" not in history_actions(race, contact)

"""The second tenant wall: PostgreSQL row-level security, seen through a non-superuser role.

Superusers (the `postgres` role the other tests use) bypass every policy, so these tests build
their own database with the migrations as `postgres`, create a throw-away LOGIN role without
BYPASSRLS, and reach the data as that role: first over a bare connection, then through the real
app signed in as a user of one org, running deliberately unscoped queries.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from flask import jsonify
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from crm_web import create_app
from crm_web.database import CURRENT_ORG_INFO_KEY
from crm_web.extensions import db
from crm_web.models import Activity, Contact, Deal
from tests import factories
from tests.conftest import TEST_DATABASE_URL, base_config, build_app, postgres_database


def _seed_org(slug: str) -> SimpleNamespace:
    org = factories.make_org(slug)
    user = factories.make_user(org, role="admin")
    contact = factories.make_contact(org, last_name=f"{slug}-contact")
    tag = factories.make_tag(org)
    db.session.execute(
        text("INSERT INTO contact_tags (contact_id, tag_id) VALUES (:c, :t)"), {"c": contact.id, "t": tag.id}
    )
    db.session.commit()
    deal = factories.make_deal(org, contact_id=contact.id)
    activity = factories.make_activity(org, contact_id=contact.id)
    return SimpleNamespace(
        id=org.id, user_id=user.id, contact_id=contact.id, tag_id=tag.id, deal_id=deal.id, activity_id=activity.id
    )


@pytest.fixture(scope="module")
def rls_db():
    """A migrated database holding orgs A and B, and a plain LOGIN role granted what the app needs."""
    role = f"crm_rls_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(TEST_DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with postgres_database("crm_rls") as owner_url:
            owner_app = build_app(owner_url)  # migrations run as the superuser owner
            with owner_app.app_context():
                a, b = _seed_org("alpha"), _seed_org("beta")
                db.session.remove()
                db.engine.dispose()
            database = make_url(owner_url).database
            with admin.connect() as conn:
                # Trust auth on 127.0.0.1: no password needed for the test role.
                conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS'))
                conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
            owner = create_engine(owner_url, isolation_level="AUTOCOMMIT")
            with owner.connect() as conn:
                conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
                conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
                # No grant on sequences: every id is a UUID or an identity column (the tallies), which needs
                # none, so a later migration's table never fails the app's writes for want of one.
            owner.dispose()
            role_url = make_url(owner_url).set(username=role).render_as_string(hide_password=False)
            yield SimpleNamespace(owner_url=owner_url, role_url=role_url, role=role, a=a, b=b)
    finally:
        # The database (and with it every grant) is gone by now, so the role has nothing left.
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.fixture
def role_engine(rls_db):
    engine = create_engine(rls_db.role_url)
    yield engine
    engine.dispose()


def _set_org(conn, org_id) -> None:
    conn.execute(select(func.set_config("app.current_org", str(org_id), True)))


def _org_ids(conn, table: str) -> set[uuid.UUID]:
    # Deliberately unscoped: no WHERE org_id, the policy alone decides.
    return set(conn.scalars(text(f"SELECT org_id FROM {table}")))


def test_the_role_is_subject_to_row_level_security(role_engine):
    with role_engine.connect() as conn:
        assert conn.scalar(text("SELECT current_setting('is_superuser')")) == "off"
        assert conn.scalar(text("SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user")) is False


@pytest.mark.parametrize(
    "table",
    [
        "contacts",
        "deals",
        "activities",
        "tags",
        "pipelines",
        "pipeline_stages",
        "deal_tallies",
        "activity_tallies",
        "search_words",
    ],
)
def test_unscoped_select_sees_only_the_current_org(role_engine, rls_db, table):
    with role_engine.begin() as conn:
        _set_org(conn, rls_db.a.id)
        assert _org_ids(conn, table) == {rls_db.a.id}
    with role_engine.begin() as conn:
        _set_org(conn, rls_db.b.id)
        assert _org_ids(conn, table) == {rls_db.b.id}


def test_tag_links_follow_the_parent_org(role_engine, rls_db):
    with role_engine.begin() as conn:
        _set_org(conn, rls_db.a.id)
        links = {tuple(row) for row in conn.execute(text("SELECT contact_id, tag_id FROM contact_tags"))}
    assert links == {(rls_db.a.contact_id, rls_db.a.tag_id)}


def test_no_setting_is_the_system_context_and_sees_everything(role_engine, rls_db):
    both = {rls_db.a.id, rls_db.b.id}
    with role_engine.connect() as conn:  # never set in this session: current_setting(.., true) is NULL
        assert conn.scalar(text("SELECT current_setting('app.current_org', true)")) is None
        assert _org_ids(conn, "contacts") == both
        conn.rollback()
        with conn.begin():
            _set_org(conn, rls_db.a.id)
        # The transaction-local value has ended: the setting now reads '' and means "system" too.
        assert conn.scalar(text("SELECT current_setting('app.current_org', true)")) == ""
        assert _org_ids(conn, "contacts") == both
        assert len(conn.execute(text("SELECT 1 FROM contact_tags")).all()) == 2


def _new_contact(org_id):
    # Core applies the model's column defaults, so only the org can make this row invalid.
    return insert(Contact.__table__).values(id=uuid.uuid4(), org_id=org_id, first_name="Eve", last_name="Intruder")


def test_writes_into_another_org_are_refused(role_engine, rls_db):
    a, b = rls_db.a, rls_db.b
    with role_engine.connect() as conn:
        with conn.begin() as transaction:
            _set_org(conn, a.id)
            conn.execute(_new_contact(a.id))  # the same row for our own org is fine
            transaction.rollback()
        with pytest.raises(ProgrammingError, match="row-level security"), conn.begin():
            _set_org(conn, a.id)
            conn.execute(_new_contact(b.id))
        with pytest.raises(ProgrammingError, match="row-level security"), conn.begin():
            _set_org(conn, a.id)
            conn.execute(text("UPDATE contacts SET org_id = :org WHERE id = :id"), {"org": b.id, "id": a.contact_id})
        with pytest.raises(ProgrammingError, match="row-level security"), conn.begin():
            _set_org(conn, a.id)  # tagging our own contact with another org's tag
            conn.execute(
                text("INSERT INTO contact_tags (contact_id, tag_id) VALUES (:c, :t)"),
                {"c": a.contact_id, "t": b.tag_id},
            )
        with conn.begin():
            _set_org(conn, a.id)
            # Another org's rows are invisible to UPDATE and DELETE as well: nothing matches.
            stolen = conn.execute(text("UPDATE deals SET name = 'stolen' WHERE id = :id"), {"id": b.deal_id})
            assert stolen.rowcount == 0
            assert conn.execute(text("DELETE FROM activities WHERE id = :id"), {"id": b.activity_id}).rowcount == 0


def test_a_superuser_bypasses_the_policies(rls_db):
    engine = create_engine(rls_db.owner_url)
    try:
        with engine.begin() as conn:
            _set_org(conn, rls_db.a.id)
            assert _org_ids(conn, "contacts") == {rls_db.a.id, rls_db.b.id}
    finally:
        engine.dispose()


# --- through the app --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def role_app(rls_db):
    """The real app connected as the plain role, with a test-only route that runs unscoped queries."""
    application = create_app(base_config(rls_db.role_url))
    sessions = []

    @application.route("/_test/unscoped")
    def unscoped():
        sessions.append(db.session())
        contacts = sorted(str(org_id) for org_id in db.session.scalars(select(Contact.org_id)))
        # A service commit ends the transaction the user loader set the org in; the next one re-applies it.
        db.session.commit()
        deals = sorted(str(org_id) for org_id in db.session.scalars(select(Deal.org_id)))
        activities = sorted(str(org_id) for org_id in db.session.scalars(select(Activity.org_id)))
        return jsonify(
            contacts=contacts, deals=deals, activities=activities, info=db.session.info.get(CURRENT_ORG_INFO_KEY)
        )

    @application.route("/_test/noop")
    def noop():
        return "ok"

    application.extensions["test_sessions"] = sessions
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _signed_in_client(application, user_id):
    client = application.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = f"{user_id}.1"  # a new user's first session version
        session["_fresh"] = True
    return client


@pytest.mark.parametrize("which", ["a", "b"])
def test_a_signed_in_request_sees_only_its_org_even_unscoped(role_app, rls_db, which):
    org = getattr(rls_db, which)
    response = _signed_in_client(role_app, org.user_id).get("/_test/unscoped")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"contacts": [str(org.id)], "deals": [str(org.id)], "activities": [str(org.id)], "info": str(org.id)}


def test_the_org_does_not_outlive_the_request(role_app, rls_db):
    response = _signed_in_client(role_app, rls_db.a.user_id).get("/_test/unscoped")
    assert response.status_code == 200
    request_session = role_app.extensions["test_sessions"][-1]
    # The scoped session (and its info) was removed at app-context teardown ...
    assert request_session not in db.session.registry.registry.values()
    with role_app.app_context():
        assert db.session() is not request_session
        assert CURRENT_ORG_INFO_KEY not in db.session.info
        # ... and the pooled connection kept nothing: the set_config was transaction-local.
        assert db.session.scalar(text("SELECT current_setting('app.current_org', true)")) in (None, "")
        # Outside a signed-in request (CLI, internal API) the app is in the system context.
        assert set(db.session.scalars(select(Contact.org_id))) == {rls_db.a.id, rls_db.b.id}
        db.session.remove()


def test_the_app_pages_work_as_the_plain_role(role_app, rls_db):
    client = _signed_in_client(role_app, rls_db.a.user_id)
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_every_table_with_an_org_has_the_policy(rls_db):
    engine = create_engine(rls_db.owner_url)
    try:
        with engine.connect() as conn:
            with_org = set(
                conn.scalars(
                    text(
                        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND column_name = 'org_id'"
                    )
                )
            )
            protected = set(
                conn.scalars(
                    text(
                        "SELECT c.relname FROM pg_class c JOIN pg_policies p ON p.tablename = c.relname "
                        "AND p.policyname = 'tenant_isolation' WHERE c.relrowsecurity AND c.relforcerowsecurity"
                    )
                )
            )
    finally:
        engine.dispose()
    # users: signing in looks a user up across orgs (see the migration's docstring).
    assert with_org - protected == {"users"}
    assert {"contact_tags", "company_tags", "lead_tags", "deal_tags"} <= protected


def test_downgrade_removes_the_policies_and_upgrade_restores_them():
    from flask_migrate import downgrade, upgrade

    from tests.conftest import MIGRATIONS

    query = text("SELECT count(*) FROM pg_class WHERE relrowsecurity OR relforcerowsecurity")
    with postgres_database("crm_rls_down") as url:
        application = build_app(url)
        with application.app_context():
            assert db.session.scalar(query) == 18
            assert db.session.scalar(text("SELECT count(*) FROM pg_policies")) == 18
            db.session.remove()
            downgrade(directory=MIGRATIONS, revision="0001_initial")
            assert db.session.scalar(query) == 0
            assert db.session.scalar(text("SELECT count(*) FROM pg_policies")) == 0
            db.session.remove()
            upgrade(directory=MIGRATIONS)
            assert db.session.scalar(text("SELECT count(*) FROM pg_policies")) == 18
            db.session.remove()
            db.engine.dispose()


def test_setting_the_org_costs_no_extra_statement(role_app, rls_db):
    from sqlalchemy import event

    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    client = _signed_in_client(role_app, rls_db.a.user_id)
    with role_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/_test/noop").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # The user loader is the whole request, and the org is set inside it.
    assert len(statements) == 1 and "set_config" in statements[0]


# The functions of models.mixins.search_key over a full name: lower(first || ' ' || last).
SEARCH_KEY_FUNCTIONS = ("lower(text)", "textcat(text, text)")


@pytest.mark.parametrize(
    "table, key, condition, function, index",
    [
        # The exact tier: models.mixins.search_key of the full name.
        (
            "contacts",
            "lower(first_name || ' ' || last_name)",
            "ILIKE '%abc%'",
            "texticlike(text, text)",
            "contact_name_trgm_idx",
        ),
        # The typo tier's vocabulary lookup (services/text_search.correct_spelling).
        ("search_words", "word", "% 'abcd'", "similarity_op(text, text)", "search_word_trgm_idx"),
    ],
)
def test_search_under_the_policy_needs_its_operators_marked_leakproof(
    rls_db, role_engine, table, key, condition, function, index
):
    """Why docs/security.md asks for `ALTER FUNCTION ... LEAKPROOF` on the search's functions."""
    query = text(f"EXPLAIN SELECT id FROM {table} WHERE {key} {condition}")

    def plan() -> str:
        with role_engine.begin() as conn:
            _set_org(conn, rls_db.a.id)
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny table: make the index the cheap path
            return "\n".join(conn.scalars(query))

    owner = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    try:
        # Policy conditions run before any non-leakproof condition, so it cannot drive an index scan.
        assert index not in plan()
        with owner.connect() as conn:  # pg_proc is per database: this touches only the test's database
            for name in SEARCH_KEY_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} LEAKPROOF"))
        assert index not in plan()  # the search key's functions alone are not enough
        with owner.connect() as conn:
            conn.execute(text(f"ALTER FUNCTION {function} LEAKPROOF"))
        assert index in plan()
    finally:
        with owner.connect() as conn:
            for name in (*SEARCH_KEY_FUNCTIONS, function):
                conn.execute(text(f"ALTER FUNCTION {name} NOT LEAKPROOF"))
        owner.dispose()


def test_the_name_order_range_needs_only_the_search_key_functions_marked(rls_db, role_engine):
    """The global search's "starts with" range (migration 0011) compares with text_ge/text_lt, which
    PostgreSQL ships LEAKPROOF: marking the search key's lower and textcat is all it needs."""
    key = "lower(first_name || ' ' || last_name) COLLATE \"C\""
    query = text(
        f"EXPLAIN SELECT id FROM contacts WHERE org_id = :org AND deleted_at IS NULL "
        f"AND {key} >= 'abc' AND {key} < 'abd'"
    )

    def plan() -> str:
        with role_engine.begin() as conn:
            _set_org(conn, rls_db.a.id)
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))  # the org_id index alone would do
            return "\n".join(conn.scalars(query, {"org": rls_db.a.id}))

    def range_in_the_index_condition() -> bool:
        conditions = [line for line in plan().splitlines() if "Index Cond" in line]
        return any(">= 'abc'" in line and "< 'abd'" in line for line in conditions)

    owner = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    try:
        assert not range_in_the_index_condition()  # the policy first: the range filters every org row
        with owner.connect() as conn:
            for name in SEARCH_KEY_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} LEAKPROOF"))
        assert range_in_the_index_condition(), plan()
    finally:
        with owner.connect() as conn:
            for name in SEARCH_KEY_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} NOT LEAKPROOF"))
        owner.dispose()


def test_the_role_writes_deals_and_activities_and_their_tallies_follow(role_engine, rls_db):
    """The tallies' triggers run as the app's role: its table grants are enough, and what they append
    belongs to the writing organisation."""
    a = rls_db.a
    with role_engine.begin() as conn:
        _set_org(conn, a.id)
        before = conn.scalar(text("SELECT coalesce(sum(deals), 0) FROM deal_tallies"))
        conn.execute(text("UPDATE deals SET value = value + 1 WHERE id = :id"), {"id": a.deal_id})
        conn.execute(text("UPDATE activities SET status = 'completed' WHERE id = :id"), {"id": a.activity_id})
        conn.execute(text("UPDATE deals SET deleted_at = now() WHERE id = :id"), {"id": a.deal_id})
        assert conn.scalar(text("SELECT coalesce(sum(deals), 0) FROM deal_tallies")) == before - 1
        assert _org_ids(conn, "deal_tallies") == {a.id} and _org_ids(conn, "activity_tallies") == {a.id}
        conn.rollback()


def test_the_role_writes_a_contact_and_its_new_words_join_its_org_vocabulary(role_engine, rls_db):
    """The search words' triggers (migration 0012) run as the app's role: they see only the current
    organisation's words (another organisation's 'quenby' does not stop this one's) and add to them
    alone; a purge takes away only its own. One transaction, rolled back: the module's data stays."""
    a, b = rls_db.a, rls_db.b
    quenby = text("SELECT org_id FROM search_words WHERE word = 'quenby'")
    with role_engine.begin() as conn:
        for org in (b, a):
            _set_org(conn, org.id)
            conn.execute(text("UPDATE contacts SET first_name = 'Quenby' WHERE id = :id"), {"id": org.contact_id})
        assert list(conn.scalars(quenby)) == [a.id]  # the policy: org A's view
        for statement in (
            "DELETE FROM contact_tags WHERE contact_id = :id",
            "UPDATE deals SET contact_id = NULL WHERE contact_id = :id",
            "UPDATE activities SET contact_id = NULL WHERE contact_id = :id",
            "DELETE FROM contacts WHERE id = :id",
        ):  # org A purges its contact
            conn.execute(text(statement), {"id": a.contact_id})
        assert list(conn.scalars(quenby)) == []
        conn.execute(text("SELECT set_config('app.current_org', '', true)"))  # the system context sees all
        assert list(conn.scalars(quenby)) == [b.id]
        conn.rollback()

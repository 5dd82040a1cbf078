"""The second tenant wall: PostgreSQL row-level security, seen through a non-superuser role.

Superusers (the `postgres` role the other tests use) bypass every policy, so these tests build
their own database with the migrations as `postgres`, create a throw-away LOGIN role without
BYPASSRLS, and reach the data as that role: first over a bare connection, then through the real
app signed in as a user of one org, running deliberately unscoped queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from flask import jsonify
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from crm_web import create_app
from crm_web.database import CURRENT_ORG_INFO_KEY
from crm_web.extensions import db
from crm_web.models import Activity, Contact, Deal, DuplicateScanGroup, DuplicateScanMember, Organization
from crm_web.services.db_roles import ensure_web_role
from tests import factories
from tests.conftest import TEST_DATABASE_URL, THROUGH_PGBOUNCER, base_config, build_app, postgres_database


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
    # A stored duplicate scan's group and its member (services/duplicates, migration 0038).
    db.session.add(
        DuplicateScanGroup(
            org_id=org.id, entity_type="contact", position=0, score=100, ids=[str(contact.id)], reasons=["email"]
        )
    )
    db.session.add(DuplicateScanMember(org_id=org.id, entity_type="contact", record_id=contact.id, position=0))
    db.session.commit()
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
            with owner_app.app_context():
                # What `flask crm web-role` does (trust auth on 127.0.0.1: no password needed). No grant on
                # sequences: every id is a UUID or an identity column (the tallies), which needs none, so a
                # later migration's table never fails the app's writes for want of one. The LEAKPROOF marks
                # are left to the tests below, which show what each one changes.
                web_role = ensure_web_role(name=role, mark_leakproof=False)
                db.session.remove()
                db.engine.dispose()
            assert web_role.created and web_role.url == make_url(owner_url).set(username=role).render_as_string(
                hide_password=False
            )
            yield SimpleNamespace(
                owner_url=owner_url, role_url=web_role.url, role=role, a=a, b=b, database=make_url(owner_url).database
            )
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


def _plan_with_only_index(rls_db, table: str, index: str, query: Any, params: dict | None = None) -> list[str]:
    """EXPLAIN `query` as the web role in organisation A, with every other index of `table` but the
    constraints' dropped in a transaction that is rolled back: the fail-closed policy (org_id = the
    org) can use the org_id indexes, which on these tiny tables always win, so only `index` is left to
    show whether a condition may drive a scan at all. Sequential scans off: the index is the cheap path."""
    others = text(
        "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = CAST(:table AS regclass) "
        "AND i.indexrelid <> CAST(:index AS regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    )
    superuser = create_engine(rls_db.owner_url)
    try:
        with superuser.connect() as conn:
            for name in conn.scalars(others, {"table": table, "index": index}).all():
                conn.execute(text(f"DROP INDEX {name}"))
            conn.execute(text(f'SET LOCAL ROLE "{rls_db.role}"'))
            _set_org(conn, rls_db.a.id)
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            found = list(conn.scalars(query, params or {}))
            conn.rollback()
    finally:
        superuser.dispose()
    return found


@contextmanager
def _marked_leakproof(rls_db, *functions: str) -> Iterator[None]:
    """The functions marked LEAKPROOF while the block runs (pg_proc is per database: this touches only
    the test's database), unmarked after it."""
    owner = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as conn:
            for name in functions:
                conn.execute(text(f"ALTER FUNCTION {name} LEAKPROOF"))
        yield
    finally:
        with owner.connect() as conn:
            for name in functions:
                conn.execute(text(f"ALTER FUNCTION {name} NOT LEAKPROOF"))
        owner.dispose()


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
        "duplicate_scan_groups",
        "duplicate_scan_members",
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


def _tenant_tables(conn) -> list[str]:
    return sorted(conn.scalars(text("SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation'")))


def test_without_an_org_the_role_sees_nothing_and_writes_nothing(role_engine, rls_db):
    """Row-level security fails closed: a missing or empty app.current_org matches no row of any tenant
    table (before migration 0015 both meant "every organisation")."""
    with role_engine.connect() as conn:
        tables = _tenant_tables(conn)
        # 18 + imports, import_updates (0016), exchange_rates (0018), saved_views (0019),
        # duplicate_dismissals and merges (0021), notifications (0022), merge_proposals and duplicate_scans (0024),
        # duplicate_scan_groups and duplicate_scan_members (0038), activity_day_tallies (0041)
        assert len(tables) == 30
        conn.rollback()
        for setting in (None, ""):  # never set in the session; set to '' (or ended: it then reads '')
            with conn.begin():
                if setting is not None:
                    conn.execute(select(func.set_config("app.current_org", setting, True)))
                value = conn.scalar(text("SELECT current_setting('app.current_org', true)"))
                # Behind a transaction pooler the server connection may have run another client's
                # transaction before: a setting never set in this session reads '' there too.
                assert value == setting or (setting is None and THROUGH_PGBOUNCER and value == ""), value
                for table in tables:
                    assert conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, (setting, table)
                assert conn.execute(text("UPDATE contacts SET last_name = 'x'")).rowcount == 0
                assert conn.execute(text("DELETE FROM deals")).rowcount == 0
            with pytest.raises(ProgrammingError, match="row-level security"), conn.begin():
                if setting is not None:
                    conn.execute(select(func.set_config("app.current_org", setting, True)))
                conn.execute(_new_contact(rls_db.a.id))
        with conn.begin():
            _set_org(conn, rls_db.a.id)
        # The transaction-local value has ended: the setting now reads '' and sees nothing again.
        assert conn.scalar(text("SELECT current_setting('app.current_org', true)")) == ""
        assert _org_ids(conn, "contacts") == set()
        assert conn.execute(text("SELECT 1 FROM contact_tags")).all() == []


def test_the_owner_is_the_system_role_and_sees_every_org(rls_db):
    """Migrations and the CLI run as the tables' owner, which the (not FORCEd) policies do not bind."""
    owner = f"crm_owner_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(TEST_DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    superuser = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOBYPASSRLS'))
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{rls_db.database}" TO "{owner}"'))
        with superuser.connect() as conn:
            conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{owner}"'))
            conn.execute(text(f'ALTER TABLE contacts OWNER TO "{owner}"'))
        engine = create_engine(make_url(rls_db.owner_url).set(username=owner))
        try:
            with engine.connect() as conn:
                assert _org_ids(conn, "contacts") == {rls_db.a.id, rls_db.b.id}
                privileged = text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
                assert conn.scalar(privileged) is False
        finally:
            engine.dispose()
    finally:
        with superuser.connect() as conn:
            conn.execute(text("ALTER TABLE contacts OWNER TO CURRENT_USER"))
            conn.execute(text(f'REVOKE ALL ON SCHEMA public FROM "{owner}"'))
        with admin.connect() as conn:
            conn.execute(text(f'REVOKE CONNECT ON DATABASE "{rls_db.database}" FROM "{owner}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
        superuser.dispose()
        admin.dispose()


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

    @application.route("/_test/limits")
    def limits():
        names = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "jit")
        query = select(*(func.current_setting(name) for name in names))
        first = list(db.session.execute(query).one())
        db.session.commit()  # the next transaction gets them again (database.py's after_begin)
        second = list(db.session.execute(query).one())
        return jsonify(first=first, second=second)

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
        # Outside a signed-in request the web role sees no organisation's rows (the CLI runs as the owner).
        assert set(db.session.scalars(select(Contact.org_id))) == set()
        db.session.remove()


def test_the_app_pages_work_as_the_plain_role(role_app, rls_db):
    client = _signed_in_client(role_app, rls_db.a.user_id)
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_every_transaction_of_a_request_runs_under_the_timeouts_without_jit(role_app, rls_db):
    """Set per transaction (SET LOCAL), in statements the request sends anyway: safe behind a
    transaction pooler, and nothing left on the pooled connection afterwards."""
    response = _signed_in_client(role_app, rls_db.a.user_id).get("/_test/limits")
    expected = ["10s", "3s", "30s", "off"]  # config.py's defaults, as PostgreSQL shows them
    assert response.get_json() == {"first": expected, "second": expected}
    with role_app.app_context():
        assert db.session.scalar(text("SELECT current_setting('jit')")) == "on"  # the server's default, kept
        db.session.remove()


def test_the_web_role_is_granted_what_the_app_needs_and_no_more(role_engine, rls_db):
    with role_engine.connect() as conn:
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("SELECT * FROM alembic_version"))
        conn.rollback()
        assert conn.scalar(text("SELECT count(*) FROM api_tokens")) >= 0  # read to check a bearer token
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("DELETE FROM api_tokens"))
        conn.rollback()
        # The statements before a request sets its own limits run under the role's defaults.
        assert conn.scalar(text("SELECT current_setting('lock_timeout')")) == "3s"


def test_sign_in_works_as_the_plain_role(role_app, rls_db):
    """Anonymous routes see no tenant row; signing in needs none (users and organizations have no policy)."""
    from tests.conftest import CSRFClient

    owner_app = create_app(base_config(rls_db.owner_url))
    with owner_app.app_context():
        user = factories.make_user(db.session.get(Organization, rls_db.a.id), role="sales", password="pw")
        email = user.email
        db.session.remove()
        db.engine.dispose()
    role_app.test_client_class = CSRFClient
    client = role_app.test_client()
    response = client.post("/login", data={"email": email, "password": "pw"})
    assert response.status_code == 303
    assert client.get("/contacts").status_code == 200


@pytest.fixture(scope="module")
def scoped_tokens(rls_db):
    """Tokens made as the owner: one for org A only, one for every organisation."""
    owner_app = create_app(base_config(rls_db.owner_url))
    with owner_app.app_context():
        org_a = db.session.get(Organization, rls_db.a.id)
        factories.make_api_token(org_a, secret="crm_rls-token-of-org-a-only-xxxxxxxxxxxx", name="a-only")
        factories.make_api_token(all_orgs=True, secret="crm_rls-token-of-every-org-xxxxxxxxxxxxx", name="all")
        db.session.remove()
        db.engine.dispose()
    return {
        "a": {"Authorization": "Bearer crm_rls-token-of-org-a-only-xxxxxxxxxxxx"},
        "all": {"Authorization": "Bearer crm_rls-token-of-every-org-xxxxxxxxxxxxx"},
    }


def test_the_internal_api_runs_as_the_plain_role_in_the_token_org(role_app, rls_db, scoped_tokens):
    """The token's organisation is set for the transaction (row-level security), as for a page."""
    client = role_app.test_client()
    stats = client.get(f"/internal/orgs/{rls_db.a.id}/stats", headers=scoped_tokens["a"])
    assert stats.status_code == 200 and stats.get_json()["contacts"] == 1 and stats.get_json()["deals"] == 1
    assert client.get(f"/internal/orgs/{rls_db.b.id}/stats", headers=scoped_tokens["a"]).status_code == 403
    other = client.get(f"/internal/orgs/{rls_db.b.id}/stats", headers=scoped_tokens["all"])
    assert other.status_code == 200 and other.get_json()["contacts"] == 1
    usage = client.post(f"/internal/orgs/{rls_db.b.id}/usage", headers=scoped_tokens["all"])
    assert usage.status_code == 201 and usage.get_json()["org_id"] == str(rls_db.b.id)


def test_in_production_a_role_that_bypasses_the_policies_is_refused(rls_db, caplog):
    """The owner (or a superuser) serving the web app would see every organisation: each process checks
    on its first request and refuses to serve."""
    production = {"CRM_ENV": "production", "SECRET_KEY": "a-real-secret-key"}
    privileged = create_app({**base_config(rls_db.owner_url), **production})
    client = privileged.test_client()
    assert client.get("/healthz").status_code == 503
    assert client.get("/login").status_code == 503
    assert "bypasses row-level security" in caplog.text
    plain = create_app({**base_config(rls_db.role_url), **production, "SESSION_COOKIE_SECURE": False})
    assert plain.test_client().get("/login").status_code == 200
    for application in (privileged, plain):
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


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
                        "AND p.policyname = 'tenant_isolation' WHERE c.relrowsecurity"
                    )
                )
            )
            forced = conn.scalar(text("SELECT count(*) FROM pg_class WHERE relforcerowsecurity"))
    finally:
        engine.dispose()
    # users: signing in looks a user up across orgs (see the migration's docstring).
    assert with_org - protected == {"users"}
    # Not FORCEd (migration 0015): the tables' owner is the system role of migrations and the CLI.
    assert forced == 0
    assert {"contact_tags", "company_tags", "lead_tags", "deal_tags"} <= protected


def test_downgrade_removes_the_policies_and_upgrade_restores_them():
    from flask_migrate import downgrade, upgrade

    from tests.conftest import MIGRATIONS

    query = text("SELECT count(*) FROM pg_class WHERE relrowsecurity OR relforcerowsecurity")
    with postgres_database("crm_rls_down") as url:
        application = build_app(url)
        with application.app_context():
            assert db.session.scalar(query) == 30
            assert db.session.scalar(text("SELECT count(*) FROM pg_policies")) == 30
            db.session.remove()
            downgrade(directory=MIGRATIONS, revision="0001_initial")
            assert db.session.scalar(query) == 0
            assert db.session.scalar(text("SELECT count(*) FROM pg_policies")) == 0
            db.session.remove()
            upgrade(directory=MIGRATIONS)
            assert db.session.scalar(text("SELECT count(*) FROM pg_policies")) == 30
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
        # The search condition itself in the index's condition (the vocabulary's index starts with org_id,
        # which the policy alone may use).
        searched = condition.split()[-1]
        found = _plan_with_only_index(rls_db, table, index, query)
        return "\n".join(line for line in found if "Index Cond" in line and searched in line)

    # Policy conditions run before any non-leakproof condition, so it cannot drive an index scan.
    assert plan() == ""
    with _marked_leakproof(rls_db, *SEARCH_KEY_FUNCTIONS):
        assert plan() == ""  # the search key's functions alone are not enough
        with _marked_leakproof(rls_db, function):
            assert plan() != ""


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

    assert not range_in_the_index_condition()  # the policy first: the range filters every org row
    with _marked_leakproof(rls_db, *SEARCH_KEY_FUNCTIONS):
        assert range_in_the_index_condition(), plan()


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
        conn.execute(text("SELECT set_config('app.current_org', '', true)"))  # no org: no words at all
        assert list(conn.scalars(quenby)) == []
        _set_org(conn, b.id)
        assert list(conn.scalars(quenby)) == [b.id]
        conn.rollback()


def test_an_import_runs_as_the_plain_role(role_app, rls_db, tmp_path):
    """The worker connects as the web role: a batch of a table is one INSERT from a JSON document
    (COPY FROM refuses tables with row-level security), new companies and tags included, and passes
    the policies' checks. Last in the file: it adds a contact to org A."""
    from crm_web.database import use_org
    from crm_web.imports.service import ImportService
    from crm_web.models import Company, Role
    from crm_web.services.base import Actor

    path = tmp_path / "people.csv"
    path.write_text("First Name,E-mail Address,Organization,Tags\nRolf,rolf@example.com,Role Works,rls-tag\n")
    with role_app.app_context():
        use_org(db.session(), rls_db.a.id)
        service = ImportService(Actor(org_id=rls_db.a.id, user_id=rls_db.a.user_id, name="A", role=Role.ADMIN))
        job = service.create_import(str(path), "contacts", file_name="people.csv")
        outcome = service.run(job.id)
        assert outcome.summary() == "created 1, updated 0, skipped 0, errors 0"
        use_org(db.session(), rls_db.a.id)
        rolf = db.session.scalar(select(Contact).where(Contact.email == "rolf@example.com"))
        assert rolf.org_id == rls_db.a.id and rolf.import_id == job.id
        company = db.session.scalar(select(Company).where(Company.id == rolf.primary_company_id))
        assert company.name == "Role Works" and company.org_id == rls_db.a.id
        db.session.remove()


def test_custom_field_conditions_under_the_policy_need_the_json_field_operator_marked_leakproof(rls_db):
    """Why `flask crm web-role` marks `jsonb_object_field_text` (`->>`) LEAKPROOF (docs/security.md):
    a custom field's condition reaches its index under the policies only then; its sort needs no mark;
    number conditions (a cast whose error would show the value) stay filters on the organisation's rows."""
    from sqlalchemy.dialects import postgresql

    from crm_web.custom_fields import CustomField, index_expression, value_expression
    from crm_web.services.custom_fields import index_name
    from crm_web.services.db_roles import LEAKPROOF_FUNCTIONS

    function = "jsonb_object_field_text(jsonb, text)"
    assert function in LEAKPROOF_FUNCTIONS
    tier = CustomField(id="t1", key="tier", label="Tier", type="select")
    score = CustomField(id="s1", key="score", label="Score", type="number")
    org_id = rls_db.a.id
    others = text(
        "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = 'contacts'::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    )

    def sql(statement) -> str:
        return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    live = (Contact.org_id == org_id, Contact.deleted_at.is_(None))
    by_tier = sql(select(Contact.id).where(*live, value_expression(Contact, tier) == "gold"))
    by_score = sql(select(Contact.id).where(*live, value_expression(Contact, score) >= 50))
    sorted_by_tier = sql(select(Contact.id).where(*live).order_by(value_expression(Contact, tier)).limit(10))
    superuser = create_engine(rls_db.owner_url)

    def plan(query: str) -> str:
        # Only the fields' indexes, as the service creates them (partial to org A's live rows): on these
        # tiny tables the org_id indexes, which the policy alone may use, would always win.
        with superuser.connect() as conn:
            for name in conn.scalars(others).all():
                conn.execute(text(f"DROP INDEX {name}"))
            for cf in (tier, score):
                method, expression = index_expression(cf)
                conn.execute(
                    text(
                        f'CREATE INDEX "{index_name(org_id, cf)}" ON contacts USING {method} ({expression}) '
                        f"WHERE org_id = '{org_id}' AND deleted_at IS NULL"
                    )
                )
            conn.execute(text(f'SET LOCAL ROLE "{rls_db.role}"'))
            _set_org(conn, org_id)
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_sort = off"))
            found = "\n".join(conn.scalars(text("EXPLAIN " + query)))
            conn.rollback()
        return found

    def in_index_condition(query: str, key: str) -> bool:
        return any("Index Cond" in line and f"'{key}'" in line for line in plan(query).splitlines())

    owner = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    try:
        # The policy first: `->>` is not LEAKPROOF, so the condition filters every row of the organisation.
        assert not in_index_condition(by_tier, "tier")
        # An ORDER BY is no condition: the index gives the order under the policy as it is.
        assert f"Index Scan using {index_name(org_id, tier)}" in plan(sorted_by_tier)
        with owner.connect() as conn:
            conn.execute(text(f"ALTER FUNCTION {function} LEAKPROOF"))
        assert in_index_condition(by_tier, "tier"), plan(by_tier)
        # Every mark web-role sets, the numeric comparisons too (for the fields' statistics): the numeric
        # cast (numeric_in, whose error quotes the text) stays unmarked, so a number condition still
        # cannot reach the index.
        with owner.connect() as conn:
            for name in LEAKPROOF_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} LEAKPROOF"))
        assert not in_index_condition(by_score, "score"), plan(by_score)
    finally:
        with owner.connect() as conn:
            for name in LEAKPROOF_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} NOT LEAKPROOF"))
        owner.dispose()
        superuser.dispose()


def test_a_phone_key_lookup_under_the_policy_needs_its_functions_marked_leakproof(rls_db):
    """Why `flask crm web-role` marks `translate` and `right` LEAKPROOF (docs/security.md): a form's
    duplicate warning looks up the typed phone's key (models/mixins.phone_key_sql) in its index
    (migration 0042) under the policies only then; else it reads every live record of the organisation."""
    from sqlalchemy.dialects import postgresql

    from crm_web.models.mixins import phone_key_sql
    from crm_web.services.db_roles import LEAKPROOF_FUNCTIONS

    marks = ("translate(text, text, text)", '"right"(text, integer)')
    assert set(marks) <= set(LEAKPROOF_FUNCTIONS)
    org_id = rls_db.a.id
    query = str(
        select(Contact.id)
        .where(Contact.org_id == org_id, Contact.deleted_at.is_(None), phone_key_sql(Contact.phone) == "5551234567")
        .compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )

    def keyed_by_index() -> bool:
        lines = _plan_with_only_index(rls_db, "contacts", "contact_phone_key_idx", text("EXPLAIN " + query))
        return any("Index Cond" in line and "'5551234567'" in line for line in lines)

    assert not keyed_by_index()
    with _marked_leakproof(rls_db, *marks):
        assert keyed_by_index()


def test_under_the_policy_a_number_condition_is_estimated_from_the_field_statistics_once_marked(rls_db):
    """Why `flask crm web-role` marks numeric's comparisons LEAKPROOF (docs/security.md): under the
    policies PostgreSQL reads the field's statistics only through a leakproof operator, and without
    them took a range on a number field to keep 0.5% of the rows (a list filtered by it sorted every
    row of the other condition's value instead of walking its sort index)."""
    from sqlalchemy.dialects import postgresql

    from crm_web.custom_fields import CustomField, index_expression, value_expression
    from crm_web.services.custom_fields import statistics_name
    from crm_web.services.db_roles import LEAKPROOF_FUNCTIONS

    score = CustomField(id="s1", key="score", label="Score", type="number")
    org_id = rls_db.a.id
    people = [
        {"id": uuid.uuid4(), "org_id": org_id, "first_name": f"P{i}", "version": 1, "custom": {"score": i % 100}}
        for i in range(2000)
    ]
    # A tenth of them: scores 50 to 59.
    query = select(Contact.id).where(
        Contact.org_id == org_id,
        Contact.deleted_at.is_(None),
        value_expression(Contact, score) >= 50,
        value_expression(Contact, score) <= 59,
    )
    explain = text(
        "EXPLAIN (FORMAT JSON) "
        + str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    )
    numeric = [name for name in LEAKPROOF_FUNCTIONS if name.startswith("numeric_")]
    assert len(numeric) == 6
    owner = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    superuser = create_engine(rls_db.owner_url)

    def estimate() -> float:
        with superuser.connect() as conn:  # all rolled back
            conn.execute(insert(Contact.__table__), people)
            _, expression = index_expression(score)  # the statistics create_index gives a number field
            conn.execute(text(f'CREATE STATISTICS "{statistics_name(org_id, score)}" ON {expression} FROM contacts'))
            conn.execute(text("ANALYZE contacts"))
            conn.execute(text(f'SET LOCAL ROLE "{rls_db.role}"'))
            _set_org(conn, org_id)
            (plan,) = conn.execute(explain).scalar()
            conn.rollback()
        return plan["Plan"]["Plan Rows"]

    try:
        assert estimate() < 50  # the default share, whatever the statistics say
        with owner.connect() as conn:
            for name in numeric:
                conn.execute(text(f"ALTER FUNCTION {name} LEAKPROOF"))
        assert 100 <= estimate() <= 400  # about the 200 rows there are
    finally:
        with owner.connect() as conn:
            for name in numeric:
                conn.execute(text(f"ALTER FUNCTION {name} NOT LEAKPROOF"))
        owner.dispose()
        superuser.dispose()


@pytest.mark.parametrize("scoped", [False, True], ids=["policy only", "and the service's org_id"])
def test_under_the_policy_a_search_reads_only_its_organisation_s_trigram_entries(rls_db, scoped):
    """Migration 0037's trigram indexes lead with org_id (btree_gin): as the web role, with the LEAKPROOF
    marks `flask crm web-role` sets, the index scan itself keeps to the organisation, whether org_id comes
    from the policy alone or from the service's condition too (uuid equality is leakproof already)."""
    from crm_web.services.db_roles import LEAKPROOF_FUNCTIONS

    # A word of this run's own: the index keeps the entries of rows an earlier run rolled back.
    word = f"zq{uuid.uuid4().hex[:8]}"
    org_condition = f"org_id = '{rls_db.a.id}' AND " if scoped else ""
    query = text(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM contacts "
        f"WHERE {org_condition}lower((first_name || ' ') || last_name) ILIKE '%{word}%'"
    )
    others = text(
        "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = 'contacts'::regclass "
        "AND i.indexrelid <> 'contact_name_trgm_idx'::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    )

    def people(org_id, count: int) -> list[dict]:
        return [
            {"id": uuid.uuid4(), "org_id": org_id, "first_name": f"P{i}", "last_name": f"A{word}e", "version": 1}
            for i in range(count)
        ]

    owner = create_engine(rls_db.owner_url, isolation_level="AUTOCOMMIT")
    superuser = create_engine(rls_db.owner_url)
    try:
        with owner.connect() as conn:  # pg_proc is per database: this touches only the test's database
            for name in LEAKPROOF_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} LEAKPROOF"))
        with superuser.connect() as conn:  # all rolled back
            conn.execute(insert(Contact.__table__), people(rls_db.b.id, 3000) + people(rls_db.a.id, 5))
            # Only the search's index left (the org_id ones would win on the policy alone), its pending
            # entries merged as (auto)vacuum leaves them.
            for name in conn.scalars(others).all():
                conn.execute(text(f"DROP INDEX {name}"))
            conn.execute(text("SELECT gin_clean_pending_list('contact_name_trgm_idx'::regclass)"))
            conn.execute(text("ANALYZE contacts"))
            conn.execute(text(f'SET LOCAL ROLE "{rls_db.role}"'))
            _set_org(conn, rls_db.a.id)
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            (plan,) = conn.execute(query).scalar()
            conn.rollback()
        scans = []
        nodes = [plan["Plan"]]
        while nodes:
            node = nodes.pop()
            nodes.extend(node.get("Plans", ()))
            if node["Node Type"] == "Bitmap Index Scan":
                scans.append(node)
        (scan,) = scans
        assert scan["Index Name"] == "contact_name_trgm_idx", scan
        assert "org_id =" in scan["Index Cond"] and "~~*" in scan["Index Cond"], scan["Index Cond"]
        assert scan["Actual Rows"] == 5, scan  # 3,005 before migration 0037
    finally:
        with owner.connect() as conn:
            for name in LEAKPROOF_FUNCTIONS:
                conn.execute(text(f"ALTER FUNCTION {name} NOT LEAKPROOF"))
        owner.dispose()
        superuser.dispose()


def test_a_stored_duplicate_scan_is_written_read_and_dismissed_as_the_plain_role(role_app, rls_db, monkeypatch):
    """The scan job stores its groups through the policy (no COPY: the role is subject to it), the page
    reads a page of them and "Not a duplicate" removes one; the other organisation sees none of them."""
    from crm_web.models import Company, DuplicateScan

    owner = create_engine(rls_db.owner_url)
    names = ("Umbrella", "Umbrella Inc.", "Wayne", "Wayne Ltd")
    ids = [uuid.uuid4() for _ in names]
    try:
        with owner.begin() as conn:
            rows = [{"id": i, "org_id": rls_db.a.id, "name": n} for i, n in zip(ids, names, strict=True)]
            conn.execute(insert(Company.__table__), rows)
        monkeypatch.setitem(role_app.config, "DUPLICATE_SCAN_IN_REQUEST", 1)
        monkeypatch.setitem(role_app.config, "WTF_CSRF_ENABLED", False)
        client = _signed_in_client(role_app, rls_db.a.user_id)
        page = client.get("/companies/duplicates")  # the first visit runs the scan (inline here) as the role
        assert page.status_code == 200 and "2 groups of likely duplicates" in page.text
        assert client.get(f"/companies/duplicates?group={ids[3]}").text.count("card duplicate-group") == 1
        dismissed = client.post("/companies/duplicates/dismiss", data={"ids": [str(ids[0]), str(ids[1])]})
        assert dismissed.status_code == 303
        after = client.get("/companies/duplicates").text
        assert "1 group of likely duplicates" in after and f"/companies/{ids[2]}" in after
        with role_engine_for(rls_db) as engine, engine.begin() as conn:
            _set_org(conn, rls_db.b.id)
            assert _org_ids(conn, "duplicate_scan_groups") == {rls_db.b.id}
            assert conn.scalar(select(func.count()).select_from(DuplicateScan.__table__)) == 0
    finally:
        with owner.begin() as conn:
            conn.execute(text("DELETE FROM duplicate_scans WHERE entity_type = 'company'"))
            conn.execute(text("DELETE FROM duplicate_scan_groups WHERE entity_type = 'company'"))
            conn.execute(text("DELETE FROM duplicate_scan_members WHERE entity_type = 'company'"))
            conn.execute(text("DELETE FROM duplicate_dismissals"))
            conn.execute(Company.__table__.delete().where(Company.__table__.c.id.in_(ids)))
        owner.dispose()


@contextmanager
def role_engine_for(rls_db):
    engine = create_engine(rls_db.role_url)
    try:
        yield engine
    finally:
        engine.dispose()

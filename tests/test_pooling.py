"""The app behind PgBouncer in transaction pooling mode (DATABASE_POOLING=transaction).

Under transaction pooling each transaction of a client connection may run on another server
connection: nothing may live on a connection between transactions. These tests run against a private
PgBouncer (tests/pgbouncer_support.py) with round robin over several server connections; the rest
of the PostgreSQL suite runs through it with TEST_PGBOUNCER=1 (see tests/conftest.py, `make test`).
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from crm_web import create_app
from crm_web.database import prepare_settings, use_org
from crm_web.extensions import db
from crm_web.models import User
from crm_web.services.contacts import ContactService
from crm_web.services.search import SearchService
from tests import factories
from tests.conftest import DIRECT_DATABASE_URL, base_config, build_app, postgres_database


def _engine_options(url: str, pooling: str) -> dict:
    config = {"SQLALCHEMY_DATABASE_URI": url, "DATABASE_POOLING": pooling}
    prepare_settings(config)
    return config.get("SQLALCHEMY_ENGINE_OPTIONS", {})


def test_transaction_pooling_turns_off_prepared_statements():
    url = "postgresql+psycopg://crm@127.0.0.1/crm"
    assert _engine_options(url, "transaction")["connect_args"]["prepare_threshold"] is None
    assert "prepare_threshold" not in _engine_options(url, "session")["connect_args"]
    assert _engine_options("sqlite:///crm.sqlite3", "transaction") == {}  # nothing to prepare there
    with pytest.raises(ValueError, match="DATABASE_POOLING"):
        _engine_options(url, "statement")


@pytest.mark.parametrize("pooling", ["session", "transaction"])
def test_psycopg_prepared_statements_break_under_transaction_pooling_unless_turned_off(pgbouncer, pooling):
    """Several clients running the same statement in short transactions, as web workers do: with
    psycopg's automatic preparation (on a statement's fifth run) one client's `_pg3_0` lands on a
    server connection where another's already is, or is missing where the next transaction runs."""
    url = pgbouncer.url(DIRECT_DATABASE_URL.rstrip("/") + "/postgres")
    engine = create_engine(url, **_engine_options(url, pooling), pool_size=3)
    connections = [engine.connect() for _ in range(3)]
    failure = None
    try:
        for number in range(20):
            for connection in connections:
                assert connection.execute(text("SELECT CAST(:n AS integer) + 1"), {"n": number}).scalar() == number + 1
                connection.commit()
    except DBAPIError as error:
        failure = error
    finally:
        for connection in connections:
            connection.invalidate()  # a failed one may hold a half-prepared statement
        engine.dispose()
    if pooling == "transaction":
        assert failure is None
    else:
        assert failure is not None and "_pg3_" in str(failure.orig), pgbouncer.log()[-2000:]


PEOPLE = ["John Smith", "Jane Smithers", "Émile Zola", "Mary Jones", "Wilhelmina Hale", "Bob Johnson"]
# Typos (the vocabulary lookup, whose `%` reads pg_trgm.similarity_threshold) and exact words.
QUERIES = ["jhon", "smiht", "jhon smiht", "zloa", "wilhelmnia", "jnoes", "smith", "jo"]


def _results(application, org_id, user_id, *, signed_in: bool) -> list:
    """Each query's global search and contact list, each in its own transactions (so on other server
    connections behind the pooler), without (CLI, tests) and with the request's tenant settings."""
    found = []
    for q in QUERIES * 2:
        with application.app_context():
            if signed_in:
                use_org(db.session, org_id)
            user = db.session.get(User, user_id)
            actor = factories.actor_for(user)
            groups = SearchService(actor).search(q)
            listed = [row.contact.full_name for row in ContactService(actor).list_page(q=q).items]
            found.append((q, [(group.kind, [hit.label for hit in group.hits]) for group in groups], listed))
            db.session.remove()
    return found


@pytest.mark.parametrize("signed_in", [False, True], ids=["no-org", "signed-in"])
def test_search_through_the_pooler_finds_what_it_finds_directly(pgbouncer, signed_in):
    with postgres_database("crm_pooled") as url:
        direct = build_app(url, DATABASE_POOLING="session")
        pooled = create_app({**base_config(pgbouncer.url(url)), "DATABASE_POOLING": "transaction"})
        try:
            with direct.app_context():
                org = factories.make_org("pooled")
                user = factories.make_user(org, role="admin")
                for name in PEOPLE:
                    first, last = name.split(" ")
                    factories.make_contact(org, first_name=first, last_name=last)
                db.session.commit()
                org_id, user_id = org.id, user.id
                db.session.remove()
            pgbouncer.warm(url)
            expected = _results(direct, org_id, user_id, signed_in=signed_in)
            assert dict((q, listed) for q, _, listed in expected)["jhon smiht"] == ["John Smith"]
            assert _results(pooled, org_id, user_id, signed_in=signed_in) == expected
        finally:
            for application in (direct, pooled):
                with application.app_context():
                    db.session.remove()
                    db.engine.dispose()

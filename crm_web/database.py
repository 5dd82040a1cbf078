"""Engine and session set-up that differs per database.

SQLite needs foreign keys and real transactions. PostgreSQL gets the signed-in request's org
re-applied to every transaction after the first (row-level security, see auth.load_user).
"""

from __future__ import annotations

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

# The PostgreSQL setting the row-level security policies read, and where the session keeps it.
CURRENT_ORG_SETTING = "app.current_org"
CURRENT_ORG_INFO_KEY = "crm_current_org"


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        _configure_postgresql(engine)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_on_connect(dbapi_connection, connection_record):
        # pysqlite opens transactions lazily and breaks SAVEPOINTs; let SQLAlchemy emit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection):
        connection.exec_driver_sql("BEGIN")


def _configure_postgresql(engine: Engine) -> None:
    from crm_web.services.text_search import SIMILARITY_THRESHOLD

    @event.listens_for(engine, "connect")
    def _trigram_threshold(dbapi_connection, connection_record):
        # The typo search's `%` operator (index-backed) compares against this session setting; set
        # once per pooled connection, so no request pays a statement for it.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET pg_trgm.similarity_threshold = {float(SIMILARITY_THRESHOLD)}")
        cursor.close()
        dbapi_connection.commit()


@event.listens_for(Session, "after_begin")
def _reapply_current_org(session, transaction, connection):
    # The user loader sets the org for the request's first transaction inside its own statement
    # (transaction-local, so a pooled connection never carries it to another request). A service
    # commit ends that transaction; the next one must set it again before its first statement.
    # session.info lives as long as the scoped session, which is removed at app-context teardown.
    org_id = session.info.get(CURRENT_ORG_INFO_KEY)
    if org_id is None or connection.dialect.name != "postgresql":
        return
    connection.execute(select(func.set_config(CURRENT_ORG_SETTING, org_id, True)))


def use_org(session: Session, org_id: object) -> None:
    """Act for one organisation in a request nobody is signed in to yet (a password link): on
    PostgreSQL, set the row-level security setting now and for the request's later transactions."""
    session.info[CURRENT_ORG_INFO_KEY] = str(org_id)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.set_config(CURRENT_ORG_SETTING, str(org_id), True)))

"""The migrations build the same schema as the models, on both engines."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crm_web.extensions import db

NAME_ORDER_INDEXES = {"contact_name_order_idx", "company_name_order_idx", "lead_name_order_idx", "deal_name_order_idx"}
SURNAME_INDEXES = {"contact_surname_idx", "lead_surname_idx"}
# SQLite's twins of those (migration 0033): built on SQLite only, where SQLAlchemy cannot reflect them.
SQLITE_NAME_ORDER_INDEXES = {
    "contact_name_order_sqlite_idx",
    "contact_surname_sqlite_idx",
    "company_name_order_sqlite_idx",
    "lead_name_order_sqlite_idx",
    "lead_surname_sqlite_idx",
    "deal_name_order_sqlite_idx",
}


def _comparable(obj, name, type_, reflected, compare_to) -> bool:
    # Alembic reflects an index expression without its COLLATE, so these would always differ;
    # test_name_order_indexes_compare_bytes checks them instead; the SQLite ones exist on SQLite only
    # (test_sqlite_name_order_indexes).
    return not (type_ == "index" and name in NAME_ORDER_INDEXES | SURNAME_INDEXES | SQLITE_NAME_ORDER_INDEXES)


# SQLAlchemy cannot reflect expression indexes on SQLite (the search's trigram ones are PostgreSQL-only,
# the contacts' lower(email) one exists on both) and says so; PostgreSQL compares them for real.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrations_match_models(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _comparable})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


@pytest.mark.postgres_only
def test_pg_trgm_indexes_exist_on_postgresql(app):
    from sqlalchemy import text

    with db.engine.connect() as connection:
        names = set(connection.scalars(text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'")))
    assert {
        "company_name_search_idx",
        "contact_name_search_idx",
        "contact_email_search_idx",
        "deal_name_search_idx",
        "lead_name_search_idx",
        "lead_email_search_idx",
        "lead_company_search_idx",
        "contact_name_trgm_idx",
        "contact_email_trgm_idx",
        "company_name_trgm_idx",
        "deal_name_trgm_idx",
        "lead_name_trgm_idx",
        "lead_email_trgm_idx",
        "lead_company_trgm_idx",
    } <= names


@pytest.mark.postgres_only
def test_trigram_functions_are_costed_for_the_planner(app):
    """Migration 0007: with pg_trgm's default COST 1 the planner scanned mid-size tables instead of
    using the trigram indexes (docs/benchmarks.md)."""
    from sqlalchemy import text

    with db.engine.connect() as connection:
        costs = dict(
            connection.execute(
                text(
                    "SELECT proname, procost FROM pg_proc WHERE proname IN "
                    "('similarity', 'word_similarity', 'similarity_op', 'word_similarity_commutator_op')"
                )
            ).all()
        )
    assert costs == {
        "similarity": 100,
        "word_similarity": 100,
        "similarity_op": 100,
        "word_similarity_commutator_op": 100,
    }


@pytest.mark.postgres_only
def test_the_planner_knows_owners_pipelines_and_stages_name_their_organisation(app):
    """Migration 0035: functional-dependency statistics on org_id and each column whose values belong to
    one organisation, so "org = small one AND owner = me" is not estimated at one row next to many
    organisations (docs/benchmarks.md, "Many tenants")."""
    from sqlalchemy import text

    with db.engine.connect() as connection:
        found = {
            table: set(columns)
            for table, columns in connection.execute(
                text(
                    "SELECT s.stxrelid::regclass::text, array_agg(a.attname) FROM pg_statistic_ext s "
                    "JOIN pg_attribute a ON a.attrelid = s.stxrelid AND a.attnum = ANY (s.stxkeys) "
                    "WHERE 'f' = ANY (s.stxkind) GROUP BY s.oid, s.stxrelid"
                )
            )
        }
    assert found == {
        "contacts": {"org_id", "owner_id"},
        "companies": {"org_id", "owner_id"},
        "leads": {"org_id", "owner_id"},
        "deals": {"org_id", "pipeline_id", "stage_id", "owner_id"},
        "activities": {"org_id", "owner_id"},
        "pipeline_stages": {"org_id", "pipeline_id"},
    }


def _index_definitions(name_like: str) -> dict[str, str]:
    from sqlalchemy import text

    with db.engine.connect() as connection:
        return dict(
            connection.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE :name"), {"name": name_like}
            ).all()
        )


@pytest.mark.postgres_only
def test_name_order_indexes_compare_bytes(app):
    """Migration 0011 and models/mixins.name_order_index: (org_id, lower(name) COLLATE "C") of the live rows."""
    definitions = _index_definitions("%\\_name\\_order\\_idx")
    assert set(definitions) == NAME_ORDER_INDEXES
    for definition in definitions.values():
        assert "USING btree (org_id, lower(" in definition and 'COLLATE "C")' in definition
        assert definition.endswith("WHERE (deleted_at IS NULL)")


@pytest.mark.postgres_only
def test_surname_indexes_lead_with_the_last_name_then_the_name_in_bytes(app):
    """Migration 0013 and models/mixins.surname_index: (org_id, lower(last_name), lower(name) COLLATE "C")."""
    definitions = _index_definitions("%\\_surname\\_idx")
    assert set(definitions) == SURNAME_INDEXES
    for definition in definitions.values():
        assert "USING btree (org_id, lower((last_name)::text), lower(" in definition and 'COLLATE "C")' in definition
        assert definition.endswith("WHERE (deleted_at IS NULL)")


def test_sqlite_name_order_indexes(app):
    """Migration 0033 and models/mixins.sqlite_name_order_index: (lower(...), org_id, ..., id) of the live
    rows, on SQLite only."""
    from sqlalchemy import text

    if db.engine.dialect.name != "sqlite":
        assert not _index_definitions("%\\_sqlite\\_idx")
        return
    with db.engine.connect() as connection:
        definitions = dict(
            connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE :name ESCAPE '\\'"),
                {"name": "%\\_sqlite\\_idx"},
            ).all()
        )
    assert set(definitions) == SQLITE_NAME_ORDER_INDEXES
    for definition in definitions.values():
        assert " (lower(" in definition and "), org_id, " in definition
        assert definition.endswith(", id) WHERE deleted_at IS NULL")

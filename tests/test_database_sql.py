"""The SQL the database runs by itself (migrations/sql/*.sql) is the schema's, and agrees with the Python.

- The migrated schema holds exactly the trigger functions, triggers and shared rules those files
  create, on both engines (so a later migration cannot change one without its own file, and the files are not stale).
- The vocabulary triggers (0012) read the columns the app's searches match, table by table.
- The tally triggers (0010) weigh a deal as services/stats/formula.py does (weighted_value in SQL;
  tests/stats_oracles.weighted_value_of, the same formula in Python), half cents included, on both engines.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Column, func, select, text

from crm_web.extensions import db
from crm_web.models import Deal, DealTally, PipelineStage
from crm_web.services.stats.formula import weighted_value
from crm_web.sql_files import SQL_DIR, split_statements
from tests import factories
from tests.stats_oracles import weighted_value_of

CREATED = re.compile(r"^CREATE (?:OR REPLACE )?(FUNCTION|TRIGGER) (\w+)", re.IGNORECASE)


def created_by_files(dialect: str) -> list[str]:
    """Every CREATE FUNCTION and CREATE TRIGGER statement of migrations/sql/*_<dialect>.sql, in order."""
    found = []
    for path in sorted(SQL_DIR.glob(f"*_{dialect}.sql")):
        found += [s for s in split_statements(path.read_text(encoding="utf-8"), dialect) if CREATED.match(s)]
    return found


def test_every_sql_file_is_split_into_complete_statements():
    """What each migration executes: no statement swallowed by the next (a lost `;`), none empty."""
    for path in SQL_DIR.glob("*.sql"):
        dialect = path.stem.rsplit("_", 1)[1]
        assert dialect in ("postgresql", "sqlite"), path.name
        statements = split_statements(path.read_text(encoding="utf-8"), dialect)
        assert statements and all(s.strip() for s in statements), path.name
        for statement in statements:
            first = statement.split(None, 1)[0].upper()
            assert first in ("ALTER", "CREATE", "INSERT", "UPDATE", "ANALYZE"), (path.name, statement[:80])
            if first == "CREATE" and dialect == "sqlite":
                assert statement.count("CREATE ") == 1, statement[:80]


def _postgresql_definitions(session) -> dict[str, str]:
    """Every trigger function and trigger of the public schema, and every other function the files
    create (the rules the triggers share), as PostgreSQL prints them; keyed by signature."""
    named = sorted({CREATED.match(s).group(2) for s in created_by_files("postgresql") if s[7:15].upper() == "FUNCTION"})
    functions = session.execute(
        text(
            "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND (p.prorettype = 'trigger'::regtype OR p.proname = ANY(:named))"
        ),
        {"named": named},
    ).all()
    triggers = session.execute(
        text("SELECT tgname, tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal")
    ).all()
    return {f"function {name}": d for name, d in functions} | {f"trigger {name} on {t}": d for name, t, d in triggers}


def test_the_schema_has_exactly_the_functions_and_triggers_of_the_sql_files(app, engine_name):
    session = db.session
    if engine_name == "sqlite":
        stored = dict(session.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all())
        written = {CREATED.match(s).group(2): s for s in created_by_files("sqlite")}
        assert stored == written  # SQLite keeps each CREATE statement's text as it was executed
        return
    # PostgreSQL prints a definition in its own layout: drop everything, run the files' CREATE
    # statements again, and the database must print the same (all rolled back with the test).
    before = _postgresql_definitions(session)
    assert before, "no trigger functions at all"
    for key in before:
        kind, signature = key.split(" ", 1)
        if kind == "function":
            session.execute(text(f"DROP FUNCTION {signature} CASCADE"))  # and a trigger function's triggers
    assert not _postgresql_definitions(session), "a trigger whose function no SQL file creates"
    for statement in created_by_files("postgresql"):
        session.execute(text(statement))
    assert _postgresql_definitions(session) == before


# --- the vocabulary triggers and the searched columns ------------------------------------------


def searched_columns_in_python() -> dict[str, set[str]]:
    """Per table, the columns the app's searches match, read from the entity registry
    (crm_web/entities.py): for every entity of the global search, its global search's expressions and
    its list's search box (`Entity.searched`, also what the deal board matches). Those are the searches
    with a typo tier; an entity outside the global search (activities) is matched by its exact words
    only and has no vocabulary. The one place the triggers' column lists are compared with."""
    from crm_web.entities import searched_globally

    expressions: list[Any] = []
    for entity in searched_globally():
        assert entity.global_search is not None  # searched_globally lists only entities that declare one
        expressions += [*entity.global_search.searched, *entity.searched]
    columns: dict[str, set[str]] = {}
    for expression in expressions:
        clause = expression.__clause_element__() if hasattr(expression, "__clause_element__") else expression
        for column in _columns_of(clause):
            columns.setdefault(column.table.name, set()).add(column.name)
    return columns


def _columns_of(clause) -> list[Column]:
    from sqlalchemy.sql.visitors import iterate

    return [element for element in iterate(clause) if isinstance(element, Column)]


@pytest.mark.postgres_only  # SQLite has no vocabulary (no typo tier)
def test_the_vocabulary_triggers_read_the_columns_the_searches_match(app):
    python = searched_columns_in_python()
    session = db.session
    update_of = {
        table: set(columns)
        for table, columns in session.execute(
            text(
                "SELECT c.relname, array(SELECT attname FROM pg_attribute a "
                "WHERE a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr)) "
                "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname LIKE '%\\_search\\_words\\_update'"
            )
        ).all()
    }
    assert update_of == python, "UPDATE OF <columns> of each <table>_search_words_update trigger"
    sources = dict(
        session.execute(text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE '%\\_search\\_words\\_%'")).all()
    )
    for table, columns in python.items():
        for function in (f"{table}_search_words_add", f"{table}_search_words_change"):
            # the text whose words are added or dropped: concat_ws(' ', r.<column>, ...)
            lists = re.findall(r"concat_ws\(' ', ([^)]*)\)", sources[function])
            assert lists, function
            for listed in lists:
                assert {c.strip().removeprefix("r.") for c in listed.split(",")} == columns, function
        # "does a row still contain the word": each table's probe must cover all its searched columns
        for other, other_columns in python.items():
            probe = re.search(rf"FROM {other} x WHERE (.*?)\)\)", sources[f"{table}_search_words_change"], re.DOTALL)
            assert probe, (table, other)
            assert set(re.findall(r"x\.(\w+)", probe.group(1))) - {"org_id"} == other_columns, (table, other)


# --- the tally triggers and the weighted formula -----------------------------------------------

# (value, percent): value x percent / 100 lands on or near half a cent, where rounding rules differ
# (half up, half even, binary floats: 2.01 x 50 % = 1.005, which a float holds as 1.00499...).
HALF_CENTS = [
    ("0.01", 50),
    ("0.03", 50),
    ("0.05", 50),
    ("2.01", 50),
    ("0.15", 10),
    ("1.15", 10),
    ("1.45", 10),
    ("4.35", 10),
    ("8.15", 10),
    ("10.05", 5),
    ("123.45", 1),
    ("0.99", 99),
    ("1000000.05", 50),
    ("999999999999.99", 33),
]


def _tally_weighted(org) -> Decimal:
    return db.session.scalar(select(func.coalesce(func.sum(DealTally.weighted), 0)).where(DealTally.org_id == org.id))


def _weighed_in_sql(deal_id) -> Decimal:
    return db.session.scalar(
        select(weighted_value())
        .select_from(Deal)
        .outerjoin(PipelineStage, PipelineStage.id == Deal.stage_id)
        .where(Deal.id == deal_id)
    )


@pytest.mark.parametrize(("value", "percent"), HALF_CENTS)
def test_a_deal_weighs_in_the_tallies_what_the_formula_says(app, org, value, percent):
    pipeline = factories.make_pipeline(org, stages=[("Open", percent, None), ("Won", 100, "won"), ("Lost", 0, "lost")])
    open_stage, won_stage, _ = factories.stages_of(pipeline)
    cases = [  # (status, the deal's own probability, its stage)
        ("open", percent, open_stage),  # its own probability
        ("open", None, open_stage),  # its stage's
        ("won", None, won_stage),
        ("lost", percent, open_stage),
    ]
    for status, probability, stage in cases:
        before = _tally_weighted(org)
        deal = factories.make_deal(org, stage=stage, value=Decimal(value), status=status, probability=probability)
        expected = weighted_value_of(
            value=Decimal(value), status=status, probability=probability, stage_probability=stage.probability
        )
        assert _tally_weighted(org) - before == expected, (status, probability)
        assert Decimal(_weighed_in_sql(deal.id)).quantize(Decimal("0.01")) == expected, (status, probability)


@pytest.mark.parametrize(("value", "percent"), HALF_CENTS[:10])
def test_a_stage_probability_change_reweighs_its_deals_as_the_formula_says(app, org, value, percent):
    pipeline = factories.make_pipeline(org, stages=[("Open", percent, None), ("Won", 100, "won")])
    stage = factories.stages_of(pipeline)[0]
    factories.make_deal(org, stage=stage, value=Decimal(value), status="open", probability=None)
    before = _tally_weighted(org)

    def weighed_at(stage_probability: int) -> Decimal:
        return weighted_value_of(
            value=Decimal(value), status="open", probability=None, stage_probability=stage_probability
        )

    for new_percent in (percent + 1, 30, 0):
        old, new = weighed_at(stage.probability), weighed_at(new_percent)
        stage.probability = new_percent
        db.session.commit()
        assert _tally_weighted(org) - before == new - old, new_percent
        before += new - old

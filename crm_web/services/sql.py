"""Typing helpers for SQLAlchemy statements."""

from typing import Any, TypeAlias, cast

from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

# A select of any columns (SQLAlchemy 2.1 types a Select by its column tuple).
AnySelect: TypeAlias = Select[*tuple[Any, ...]]


def session_or_default(session: Session | None) -> Session:
    """The given session, else the request's (Flask-SQLAlchemy's scoped session, typed as a Session)."""
    from crm_web.extensions import db

    return session if session is not None else cast(Session, db.session)


def insert_ignoring_duplicates(session: Session, table: Any) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` for the session's engine (PostgreSQL and SQLite both have it):
    a row a concurrent transaction inserted first is skipped, not a unique-key error. With `.returning()`
    it yields only the rows this statement inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


def org_is(column: Any, org_id: Any, dialect: str) -> ColumnElement[bool]:
    """`column` (an org_id) is the organisation. On SQLite marked `likely()`: the embedded database has
    no statistics and takes an equality on org_id for a selective one, so it read rows through an
    org_id index, every row of the organisation, where a primary key or the row's own index
    (`id IN (the page's ids)`, a contact's activities) serves. One organisation holds most rows of
    its SQLite database."""
    scope: ColumnElement[bool] = column == org_id
    return func.likely(scope) if dialect == "sqlite" else scope


def sorted_unindexed(column: Any, dialect: str) -> ColumnElement[Any]:
    """`column` as a sort key no index serves, on SQLite (`+column`, the column's own value): without
    statistics it walked an (org_id, column) index in the sort's order, every row of the organisation,
    instead of reading a record's few rows through their own index (a company's or contact's deals)
    and sorting them. The column itself on PostgreSQL, whose planner sees how few rows there are."""
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)

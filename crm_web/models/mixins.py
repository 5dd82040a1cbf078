"""Column groups shared by several entities, and index helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String, func, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement


class AddressMixin:
    street: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str | None] = mapped_column(String(120))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(120))


def trigram_index(name: str, *columns: str) -> Index:
    """A trigram GIN index on PostgreSQL (fast ILIKE '%x%' and similarity); a plain index on SQLite.

    Declared on the model so Alembic autogenerate knows it and never drops it.
    """
    return Index(
        name,
        *columns,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops" for column in columns},
    )


# How many of a phone number's last digits make its duplicate key (services/duplicates/matching.py).
PHONE_DIGITS = 10


def phone_key_sql(column: Any) -> Any:
    """phone_key() of services/duplicates/matching.py in SQL (without its length check): the last
    PHONE_DIGITS digits. The digits are what is left after deleting every character that is not one
    (translate(): no regular expression to run per row). Literals inline: constant statements, one
    plan, and the expression of phone_key_index."""
    not_digits = func.translate(column, literal_column("'0123456789'"), literal_column("''"))
    return func.right(func.translate(column, not_digits, literal_column("''")), literal_column(str(PHONE_DIGITS)))


def phone_key_index(table: Any, name: str) -> Index:
    """PostgreSQL: an organisation's live records by the key of their phone, for the forms' duplicate
    warning, which looks up the key of the number being typed (Matcher.candidates)."""
    return Index(
        name, table.c.org_id, phone_key_sql(table.c.phone), postgresql_where=text("deleted_at IS NULL")
    ).ddl_if(dialect="postgresql")


def full_name(first: Any, last: Any) -> ColumnElement[str]:
    """`first || ' ' || last` with the space inline, so it matches the trigram expression indexes."""
    return first.op("||")(literal_column("' '")).op("||")(last)


def search_key(expression: Any) -> ColumnElement[str]:
    """lower(expr): the expression the search's trigram indexes are built on.

    No COALESCE: PostgreSQL assumes a COALESCE may leak, so under row-level security it ran the
    policy first and no search of the production role could use these indexes (migration 0008,
    docs/security.md). A NULL column simply matches nothing. Literals are inline (never bound
    parameters) so even a generic plan matches the index.
    """
    return func.lower(expression)


def name_order_key(expression: Any, dialect: str) -> ColumnElement[str]:
    """search_key(expression) compared byte by byte: the global search ranks names that start with the
    query first and reads them in this order from name_order_index, stopping after a page. (PostgreSQL's
    default collation orders by language rules, which an index range for "starts with" cannot use;
    SQLite compares bytes already.)"""
    key = search_key(expression)
    return key.collate("C") if dialect == "postgresql" else key


def name_order_index(table: Any, name: str, expression: Any) -> Index:
    """A btree index of the live rows on (org_id, name_order_key(expression)). PostgreSQL only, like
    search_key_index."""
    return Index(
        name,
        table.c.org_id,
        name_order_key(expression, "postgresql"),
        postgresql_where=text("deleted_at IS NULL"),
        _table=table,
    ).ddl_if(dialect="postgresql")


def surname_index(table: Any, name: str, surname: Any, expression: Any) -> Index:
    """A btree index of the live rows on (org_id, search_key(surname), name_order_key(expression)): the
    people whose last name is the query, in name order, so the global search reads the first few of
    a common surname instead of ranking all of them. PostgreSQL only, like name_order_index."""
    return Index(
        name,
        table.c.org_id,
        search_key(surname),
        name_order_key(expression, "postgresql"),
        postgresql_where=text("deleted_at IS NULL"),
        _table=table,
    ).ddl_if(dialect="postgresql")


def sqlite_name_order_index(table: Any, name: str, expression: Any, *, surname: Any = None) -> Index:
    """SQLite's twin of name_order_index, or with `surname` of surname_index, which it cannot build
    (COLLATE "C"; there name_order_key is plain lower(expression)): the live rows on (lower(name),
    org_id, id), or (lower(surname), org_id, lower(name), id). The name leads, not org_id: without
    statistics SQLite takes any index on org_id alike, and this one, the newest, won those ties and
    read every row of a list in name order rather than in table order. services/search.py reads it
    with its org_id test kept out of the index choice. Migration 0033."""
    keys: tuple[Any, ...] = (name_order_key(expression, "sqlite"), table.c.org_id)
    if surname is not None:
        keys = (search_key(surname), table.c.org_id, name_order_key(expression, "sqlite"))
    return Index(name, *keys, table.c.id, sqlite_where=text("deleted_at IS NULL"), _table=table).ddl_if(
        dialect="sqlite"
    )


def search_key_index(table: Any, name: str, expression: Any) -> Index:
    """A GIN index on (org_id, search_key(expression) as trigrams) of `table`, which the global and list
    searches match exactly. org_id first (btree_gin, migration 0037): the index scan keeps to the
    organisation instead of collecting every organisation's matches. PostgreSQL only: SQLite's search
    is a plain scan anyway, and SQLAlchemy cannot reflect SQLite expression indexes (the migration
    test would warn)."""
    key = f"{name}_key"
    # Given the table explicitly: an expression holding a literal column does not attach itself.
    return Index(
        name,
        table.c.org_id,
        search_key(expression).label(key),
        postgresql_using="gin",
        postgresql_ops={key: "gin_trgm_ops"},
        _table=table,
    ).ddl_if(dialect="postgresql")


def live_index(table_name: str, *columns: str) -> Index:
    """A partial (org_id, *columns) index of the live rows only. A list page's total is a count of the
    org's live rows (often by status or owner): without it PostgreSQL read every row to check
    deleted_at; with it the count is an index-only scan."""
    predicate = text("deleted_at IS NULL")
    return Index(
        f"ix_{table_name}_org_{'_'.join(columns)}_live",
        "org_id",
        *columns,
        postgresql_where=predicate,
        sqlite_where=predicate,
    )


def one_flagged_per(name: str, scope_column: str, flag: str) -> Index:
    """At most one row per `scope_column` with the boolean `flag` set (one default pipeline per
    organisation, one won and one lost stage per pipeline), enforced by a partial unique index."""
    predicate = text(flag)
    return Index(name, scope_column, unique=True, postgresql_where=predicate, sqlite_where=predicate)


def trash_index(table_name: str) -> Index:
    """A partial (org_id, deleted_at) index of the trashed rows only: the trash page reads the newest
    of them per table (a backward range scan serves ORDER BY deleted_at DESC), and live pages never
    pay for it. Declared with both dialects' WHERE so the migration test compares equal on each."""
    predicate = text("deleted_at IS NOT NULL")
    return Index(
        f"ix_{table_name}_org_trashed", "org_id", "deleted_at", postgresql_where=predicate, sqlite_where=predicate
    )

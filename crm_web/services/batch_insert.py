"""Writing a batch of new rows of one table in one statement: the CSV import and the volume seeder
share this writer.

On PostgreSQL one statement per batch also means the tables' statement triggers (search vocabulary,
tallies) run once for the batch, not once per row: a COPY when the role is not subject to the tenant
policies (the owner: the command line, the benchmark), else (COPY FROM refuses tables with row-level
security, and the web role is subject to them) one INSERT of the batch's rows sent as one JSON
document. On SQLite, whose triggers run per row anyway, one executemany INSERT.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import sql as psycopg_sql
from sqlalchemy import JSON, insert
from sqlalchemy.orm import Session

_MAY_COPY = "batch_insert_may_copy"


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """The batch's rows of `table` (a Table) in one statement on the session's connection (its
    transaction, its tenant setting). Every row gets the same columns (a column some rows leave out is
    NULL in them); columns no row names take their defaults."""
    if not rows:
        return
    keys = list(dict.fromkeys(k for row in rows for k in row))
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), [{k: row.get(k) for k in keys} for row in rows])
    elif may_copy(session):
        _copy_rows(session, table, keys, rows)
    else:
        _insert_json(session, table, keys, rows)


def may_copy(session: Session) -> bool:
    """Whether the connected role ignores the tenant policies (asked once per connection)."""
    from crm_web.database import role_bypasses_row_security

    info = session.connection().info
    if _MAY_COPY not in info:
        info[_MAY_COPY] = role_bypasses_row_security(session)
    return bool(info[_MAY_COPY])


def _json_text(value: Any) -> str:
    return json.dumps(value)


def _driver_rows(
    connection: Any, table: Any, keys: list[str], rows: list[dict[str, Any]], *, json_as_text: bool = True
) -> tuple[list[Any], list[list[Any]]]:
    """The columns to write and each row's cells as the driver takes them, as an INSERT through
    SQLAlchemy would send them: the columns' Python defaults fill the columns no row names, and each
    column's bind processing (UTCDateTime, ...) applies; the server defaults fill the rest. A JSON
    value (a history entry's changes, custom values) is its text for COPY, which does not adapt a
    dict, and stays a value inside a JSON document (`json_as_text=False`)."""
    dialect = connection.dialect
    defaults = [c for c in table.columns if c.name not in keys and c.default is not None and not c.default.is_sequence]
    columns = [table.c[k] for k in keys] + defaults
    processors = [
        (_json_text if json_as_text else None)
        if isinstance(c.type.dialect_impl(dialect), JSON)
        else c.type.bind_processor(dialect)
        for c in columns
    ]
    # Only the cells that have a processor are visited again: a seeded table has millions of rows. A
    # JSON column's cells are its processor's (its text for COPY); no other column takes a dict.
    processed_at = [(i, p) for i, p in enumerate(processors) if p is not None]
    cells: list[list[Any]] = []
    for row in rows:
        values = [row.get(k) for k in keys]
        for column in defaults:
            default = column.default
            values.append(default.arg(None) if default.is_callable else default.arg)
        for i, processor in processed_at:
            if values[i] is not None:
                values[i] = processor(values[i])
        cells.append(values)
    return columns, cells


def _copy_rows(session: Session, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """`COPY table (columns) FROM STDIN` on the session's connection (its transaction, its RLS setting)."""
    connection = session.connection()
    columns, cells = _driver_rows(connection, table, keys, rows)
    statement = psycopg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        psycopg_sql.Identifier(table.name), psycopg_sql.SQL(", ").join(psycopg_sql.Identifier(c.name) for c in columns)
    )
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in cells:
            copy.write_row(row)


def _json_scalar(value: Any) -> str:
    """A cell JSON has no type for (a uuid, a date, a timestamp, a decimal), as PostgreSQL reads it."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f"Cannot write {type(value).__name__} in a batch.")


def _insert_json(session: Session, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """`INSERT INTO table (columns) SELECT columns FROM json_populate_recordset(NULL::table, %s)`: the
    batch in one statement and one round trip, its rows sent as one JSON document (encoded in C; the
    server reads each value with its column's input function, so a value too long for its column is
    refused as by any INSERT), on the session's connection. Never prepared, so each batch is planned
    with the tables as they are (the tenant policies' checks probe the records a tag link names)."""
    connection = session.connection()
    columns, cells = _driver_rows(connection, table, keys, rows, json_as_text=False)
    names = [c.name for c in columns]
    document = json.dumps([dict(zip(names, row, strict=True)) for row in cells], default=_json_scalar)
    listed = psycopg_sql.SQL(", ").join(psycopg_sql.Identifier(name) for name in names)
    statement = psycopg_sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)"
    ).format(table=psycopg_sql.Identifier(table.name), columns=listed)
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(statement, [document], prepare=False)

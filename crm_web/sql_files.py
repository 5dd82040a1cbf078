"""SQL the database runs by itself (trigger functions, triggers), kept as files in migrations/sql.

A migration executes its file statement by statement (`execute_file`), and tests read the same files
to check that the schema holds exactly what they define, so the SQL is read where it is written, not
assembled from strings. Files are named <revision>_<dialect>.sql and are frozen with their migration.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crm_web.config import PROJECT_ROOT

SQL_DIR = PROJECT_ROOT / "migrations" / "sql"


def sql_path(revision: str, dialect: str) -> Path:
    return SQL_DIR / f"{revision}_{dialect}.sql"


def split_statements(sql: str, dialect: str) -> list[str]:
    """The statements of `sql`, without the comment lines before each and the final semicolon.

    A statement ends with a line that ends with `;`, unless that line is inside a $$-quoted function
    body (PostgreSQL) or a CREATE TRIGGER's BEGIN ... END (SQLite, as sqlite3.complete_statement
    decides)."""
    found: list[str] = []
    lines: list[str] = []
    for line in sql.splitlines():
        if not lines and (not line.strip() or line.lstrip().startswith("--")):
            continue  # blank lines and comments between statements describe the file, not a statement
        lines.append(line)
        text = "\n".join(lines)
        if not line.rstrip().endswith(";"):
            continue
        if dialect == "sqlite" and not sqlite3.complete_statement(text):
            continue
        if dialect != "sqlite" and text.count("$$") % 2:
            continue
        found.append(text.rstrip().removesuffix(";").rstrip())
        lines = []
    if lines:
        raise ValueError(f"SQL after the last statement does not end with ';': {lines[0]!r}")
    return found


def file_statements(revision: str, dialect: str) -> list[str]:
    return split_statements(sql_path(revision, dialect).read_text(encoding="utf-8"), dialect)


def execute_file(op, revision: str) -> None:
    """Run migrations/sql/<revision>_<the connection's dialect>.sql through Alembic's `op`."""
    for statement in file_statements(revision, op.get_bind().dialect.name):
        op.execute(statement)

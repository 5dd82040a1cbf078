"""Move organisations from the embedded SQLite database to PostgreSQL (`flask crm move-to-postgres`).

Both databases must be migrated to the same revision first (`flask db upgrade` against each); the
copy goes table by table in foreign-key order through the models' own tables, so every type (UUIDs,
JSON, decimals, times) converts the way the app reads it. What the databases derive themselves is
not copied: the deal and activity tallies and the search vocabulary are rebuilt by the target's
triggers as the rows arrive, exactly as if they had been entered there. Internal API tokens belong
to no single organisation and are not moved (issue new ones with `crm api-token create`).

The target gets each organisation in one transaction: all of it, or (on any error, such as an email
that another organisation there already uses) nothing. An organisation whose id or slug exists in
the target is refused, so running the command twice copies nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from crm_web.config import database_url_from
from crm_web.errors import CRMException
from crm_web.models.base import Base

# Kept by triggers in each database (migrations 0010_tallies, 0012_search_words, 0041_xl_board); api_tokens
# span organisations.
NOT_COPIED = frozenset(
    {"deal_tallies", "activity_tallies", "activity_day_tallies", "search_words", "api_tokens", "alembic_version"}
)
BATCH = 1000


@dataclass
class MoveReport:
    org_slug: str
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _org_rows(table: Table, org_id: uuid.UUID) -> Select[Any]:
    """The rows of `table` that belong to the organisation."""
    tables = Base.metadata.tables
    if table.name == "organizations":
        return select(table).where(table.c.id == org_id)
    if "org_id" in table.c:
        return select(table).where(table.c.org_id == org_id)
    if "tag_id" in table.c:  # the tag links: the organisation's tags
        tags = tables["tags"]
        return select(table).where(table.c.tag_id.in_(select(tags.c.id).where(tags.c.org_id == org_id)))
    if "user_id" in table.c:  # password links of the organisation's users
        users = tables["users"]
        return select(table).where(table.c.user_id.in_(select(users.c.id).where(users.c.org_id == org_id)))
    raise CRMException(f"Do not know which rows of {table.name} belong to an organisation.")


def _revision(connection: Connection) -> str | None:
    try:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        connection.rollback()
        return None


def _batches(connection: Connection, statement: Select[Any]) -> Iterator[list[dict[str, Any]]]:
    result = connection.execution_options(yield_per=BATCH).execute(statement)
    for partition in result.mappings().partitions(BATCH):
        yield [dict(row) for row in partition]


def open_engines(source_url: str, target_url: str) -> tuple[Engine, Engine]:
    source_url, target_url = database_url_from(source_url), database_url_from(target_url)
    if make_url(source_url).get_backend_name() != "sqlite":
        raise CRMException("--from must be a SQLite URL (sqlite:///path/to/crm.sqlite3).")
    if make_url(target_url).get_backend_name() != "postgresql":
        raise CRMException("--to must be a PostgreSQL URL (postgresql+psycopg://owner@host:5432/crm).")
    return create_engine(source_url), create_engine(target_url)


def move_organisations(
    source: Engine, target: Engine, slugs: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> list[MoveReport]:
    """Copy each organisation (all of the source's without `slugs`) from `source` into `target`."""
    tables = Base.metadata.tables
    organizations = tables["organizations"]
    reports = []
    with source.connect() as reading:
        source_revision = _revision(reading)
        with target.connect() as probe:
            target_revision = _revision(probe)
        if source_revision is None or source_revision != target_revision:
            raise CRMException(
                f"Both databases must be at the same migration (source {source_revision or 'none'}, target "
                f"{target_revision or 'none'}): run `flask db upgrade` against each first."
            )
        query = select(organizations.c.id, organizations.c.slug).order_by(organizations.c.slug)
        if slugs:
            query = query.where(organizations.c.slug.in_(slugs))
        found = reading.execute(query).all()
        missing = set(slugs or ()) - {slug for _, slug in found}
        if missing:
            raise CRMException(f"No organisation {', '.join(sorted(missing))} in the source.")
        for org_id, slug in found:
            reports.append(_move_one(reading, target, org_id, slug, progress))
    return reports


def _move_one(
    reading: Connection, target: Engine, org_id: uuid.UUID, slug: str, progress: Callable[[str], None] | None
) -> MoveReport:
    organizations = Base.metadata.tables["organizations"]
    report = MoveReport(slug)
    with target.begin() as writing:
        clash = writing.execute(
            select(organizations.c.slug).where((organizations.c.id == org_id) | (organizations.c.slug == slug))
        ).first()
        if clash is not None:
            raise CRMException(f"The target already has the organisation {clash.slug}: nothing copied.")
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_COPIED:
                continue
            count = 0
            for batch in _batches(reading, _org_rows(table, org_id)):
                try:
                    writing.execute(table.insert(), batch)
                except DBAPIError as error:
                    raise CRMException(
                        f"Could not copy {table.name} of {slug}: {str(error.orig).splitlines()[0]} (nothing copied)."
                    ) from error
                count += len(batch)
            report.rows[table.name] = count
        for name in report.rows:
            writing.execute(text(f'ANALYZE "{name}"'))
    if progress:
        progress(f"{slug}: {report.total} rows")
    return report

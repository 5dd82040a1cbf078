"""Declarative base, shared column types and the mixins every tenant table is built from.

Soft delete is enforced here, once: every ORM SELECT hides soft-deleted rows of any
SoftDeleteMixin model (including eager and lazy relationship loads). The one explicit way
to see them is `Model.select_with_deleted()` / `Model.select_deleted()`, which set the
`include_deleted` execution option.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, MetaData, Select, Uuid, event, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    registry,
    with_loader_criteria,
)
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The id of a table that triggers append to. SQLite only auto-increments an INTEGER PRIMARY KEY;
# PostgreSQL gets an identity column, which (unlike a serial's sequence) needs no grant of its own:
# the triggers insert as the app's role.
TRIGGER_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both engines (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), uuid.UUID: Uuid()},
    )


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OrgScopedMixin:
    """A row that belongs to exactly one organisation (the tenant)."""

    @declared_attr
    def org_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)


class OwnedMixin:
    """A row with an owning user (the sales rep responsible for it)."""

    @declared_attr
    def owner_id(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)


class SoftDeleteMixin:
    """Deleting sets deleted_at/deleted_by; the row stays until purged from the trash."""

    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    @declared_attr
    def deleted_by_id(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @classmethod
    def select_with_deleted(cls) -> Select[Any]:
        """Every row, deleted or not (the seed's `all_objects`)."""
        return select(cls).execution_options(include_deleted=True)

    @classmethod
    def select_deleted(cls) -> Select[Any]:
        """Only soft-deleted rows (the seed's `deleted_only`)."""
        return cls.select_with_deleted().where(cls.deleted_at.is_not(None))


class VersionedMixin:
    """Optimistic locking: an UPDATE of a stale copy raises StaleDataError (-> Conflict)."""

    version: Mapped[int] = mapped_column(default=1, server_default="1")

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]  # a mixin of a mapped class


class ImportedMixin:
    """The CSV import that created the row, if one did (Undo import trashes exactly those rows). No
    foreign key: SQLite could add one only by rebuilding the table, and an import's rows outlive it."""

    import_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)


# JSONB on PostgreSQL (GIN and expression indexes), JSON text on SQLite (json_extract).
JSON_VALUES = JSON().with_variant(JSONB(), "postgresql")


class CustomValuesMixin:
    """The record's custom field values (docs/design.md, "Custom fields"): {field key: value}, None
    when the record has none. Keys are the organisation's field keys (services/custom_fields.py)."""

    custom: Mapped[dict[str, Any] | None] = mapped_column(JSON_VALUES, default=None)


class RecordMixin(IdMixin, TimestampMixin, OrgScopedMixin, OwnedMixin, SoftDeleteMixin, VersionedMixin, ImportedMixin):
    """What every entity's table has (crm_web/entities.py): an id, timestamps, an organisation, an owner,
    soft delete, a version for optimistic locking and the import that created it."""


@event.listens_for(Session, "do_orm_execute")
def _hide_soft_deleted_rows(state: ORMExecuteState) -> None:
    if (
        state.is_select
        and not state.is_column_load
        and not state.is_relationship_load
        and not state.execution_options.get("include_deleted", False)
    ):
        state.statement = state.statement.options(
            with_loader_criteria(
                SoftDeleteMixin,
                lambda cls: cls.deleted_at.is_(None),
                include_aliases=True,
            )
        )

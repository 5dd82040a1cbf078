"""Column groups shared by several entities, and index helpers."""

from __future__ import annotations

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column


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

"""Organisations (tenants) and their users."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, false, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from crm_web.models.base import Base, IdMixin, TimestampMixin, utcnow

DEFAULT_TIME_ZONE = "UTC"


class Role(enum.StrEnum):
    """Ordered: each role can do everything the roles below it can."""

    SALES = "sales"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANKS[self]

    def at_least(self, other: Role) -> bool:
        return _ROLE_RANKS[self] >= _ROLE_RANKS[other]


# Looked up, not searched: permissions.can asks once per card or calendar item a page shows.
_ROLE_RANKS = {role: rank for rank, role in enumerate(Role)}


class Organization(IdMixin, TimestampMixin, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    # services/cache_versions.py: every cached value's key carries it; it changes when a change could
    # not reach the cache, so the organisation's old entries can never come back.
    cache_epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The currency new pipelines and deals start with.
    default_currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    # An IANA zone: what "today", "this week" and "due today" mean; stored datetimes stay UTC.
    time_zone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIME_ZONE, server_default=DEFAULT_TIME_ZONE)
    # `crm purge-trash` without an age purges what is older than this; None: TRASH_RETENTION_DAYS.
    trash_retention_days: Mapped[int | None] = mapped_column(default=None)
    # The getting-started checklist's "review your pipeline stages", once someone confirmed them.
    stages_reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Whether sales users may import CSV files (into their own ownership); managers and admins always may.
    sales_can_import: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Whether sales users may publish saved views to the organisation; managers and admins always may.
    sales_can_publish_views: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The custom field definitions, {entity name: [field, ...]} (services/custom_fields.py): kept on this
    # row because every signed-in request loads it with the user, so reading them costs no statement.
    custom_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class User(UserMixin, IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Empty until an invited user chooses a password (no password matches it).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=Role.SALES.value)
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    # Part of every session and remember cookie (get_id): bumping it ends them all (auth.py).
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    # Set when an admin chose the password: the user must pick their own at first sign-in.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Per list (services/saved_views.LISTS): the order of its view tabs, the built-in views hidden and
    # the default view. Loaded with the user (no statement of its own on a list page).
    view_prefs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    # The columns the user picked per list, {list name: [column key, ...]} (views/columns.py); loaded
    # with the user, so a list reads it without a statement.
    list_columns: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Notifications (services/notifications.py): minutes before an activity's due time to remind,
    # and the kinds this user turned off (comma separated).
    reminder_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    muted_notifications: Mapped[str] = mapped_column(String(200), default="", server_default="")

    org: Mapped[Organization] = relationship(lazy="raise_on_sql")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    def get_id(self) -> str:
        """The session's and remember cookie's user id: the id and the session version."""
        return f"{self.id}.{self.session_version}"

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def status(self) -> str:
        """ "active", "invited" (no password chosen yet) or "deactivated"."""
        if not self.active:
            return "deactivated"
        return "active" if self.password_hash else "invited"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def has_role(self, role: Role) -> bool:
        return self.role_enum.at_least(role)

    @property
    def initials(self) -> str:
        parts = self.name.split()
        return "".join(p[0] for p in parts[:2]).upper() or self.email[:1].upper()


# One account per email across the whole product, whatever its case.
Index("uq_users_email_key", func.lower(User.__table__.c.email), unique=True)


class UserToken(IdMixin, Base):
    """A one-time link to choose a password: an invitation or a reset. Only its hash is stored."""

    __tablename__ = "user_tokens"

    # No org_id: a link belongs to its user (and so to the user's organisation only). Like `users`,
    # the table has no row-level security policy: a link is opened before anyone is signed in.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))  # "invite" or "reset"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

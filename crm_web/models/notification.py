"""Notifications: what happened to a user's records by someone else's hand, and reminders of their
activities (services/notifications.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, utcnow

# What a user can be told about (each can be turned off on /account).
NOTIFICATION_KINDS: dict[str, str] = {
    "assigned": "A record was assigned to me",
    "deal_moved": "A deal of mine was moved",
    "deal_won": "A deal of mine was won",
    "deal_lost": "A deal of mine was lost",
    "mentioned": "I was mentioned in an activity note",
    "due_soon": "An activity of mine is due soon",
    "overdue": "An activity of mine became overdue",
}


class Notification(IdMixin, OrgScopedMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # The bell: a user's unread, newest first; the list: a user's notifications newest first.
        Index("ix_notifications_user_created", "user_id", "created_at"),
        Index("ix_notifications_user_read", "user_id", "read_at"),
        # A reminder is stored once per activity and due time, whoever computes it first.
        UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_dedupe"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[uuid.UUID]
    label: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(String(255), default="")
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(120), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(default=None)

"""Activities: tasks, notes, calls, emails and meetings linked to any record."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, RecordMixin
from crm_web.models.mixins import live_index, trash_index

ACTIVITY_TYPES = [("task", "Task"), ("note", "Note"), ("call", "Call"), ("email", "Email"), ("meeting", "Meeting")]
ACTIVITY_STATUSES = [
    ("pending", "Pending"),
    ("in_progress", "In progress"),
    ("completed", "Completed"),
    ("cancelled", "Cancelled"),
]
ACTIVITY_PRIORITIES = [("low", "Low"), ("medium", "Medium"), ("high", "High"), ("urgent", "Urgent")]
OPEN_ACTIVITY_STATUSES = ("pending", "in_progress")


class Activity(RecordMixin, Base):
    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_org_status_due", "org_id", "status", "due_at"),
        Index("ix_activities_org_owner_status", "org_id", "owner_id", "status"),
        Index("ix_activities_org_owner_due", "org_id", "owner_id", "due_at"),
        Index("ix_activities_contact", "contact_id"),
        Index("ix_activities_company", "company_id"),
        Index("ix_activities_deal", "deal_id"),
        Index("ix_activities_lead", "lead_id"),
        trash_index("activities"),
        live_index("activities", "owner_id", "status"),
        # The dashboard's clock-bound counts (overdue, due and completed this week): index-only
        # range counts, the owner filtered inside the index (services/stats/tallies.py).
        live_index("activities", "status", "due_at", "owner_id"),
        live_index("activities", "status", "completed_at", "owner_id"),
        # The calendar's range, the team's or one owner's: the ids it keeps are cut from the index
        # (services/calendar.py).
        live_index("activities", "due_at", "owner_id", "id"),
    )

    type: Mapped[str] = mapped_column(String(20), default="task")
    subject: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    priority: Mapped[str] = mapped_column(String(10), default="medium")
    due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_minutes: Mapped[int | None]
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    deal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))

    owner = relationship("User", foreign_keys="Activity.owner_id", lazy="raise_on_sql")
    contact = relationship("Contact", lazy="raise_on_sql")
    company = relationship("Company", lazy="raise_on_sql")
    deal = relationship("Deal", lazy="raise_on_sql")
    lead = relationship("Lead", lazy="raise_on_sql")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ACTIVITY_STATUSES

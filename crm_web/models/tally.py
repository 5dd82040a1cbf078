"""Running tallies of deals and activities, kept by the database as each write commits.

The dashboard and the board headers read these few hundred rows instead of aggregating every deal
and activity of the organisation on every first view after a change. Triggers written by migration
0010 append one row per changed group and per statement: the row's counts are the difference the
statement made (negative for what left the group), so every write path (a form, a board move, a bulk
delete, the trash, a CLI seed, psql) is counted by the same code and in the same transaction. Rows
are only appended, never updated, so two users moving deals between the same stages never wait on
each other; services/stats/tallies.py folds them back into one row per group when they pile up.

No foreign key on org_id: deleting an organisation cascades to its deals, whose trigger then appends
rows for an organisation that is being deleted (they sum to zero and are compacted away).
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import Identity, Index, Numeric, String, false
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import TRIGGER_ROW_ID, Base


class TallyMixin:
    """One appended difference (or, once compacted, one group's sum) of an organisation's counts."""

    id: Mapped[int] = mapped_column(TRIGGER_ROW_ID, Identity(), primary_key=True)
    org_id: Mapped[uuid.UUID]
    owner_id: Mapped[uuid.UUID | None]
    compacted: Mapped[bool] = mapped_column(default=False, server_default=false())  # a sum, not a delta


class DealTally(TallyMixin, Base):
    """Live deals of one group: owner, stage, status, currency, expected-close month, closing month (UTC)."""

    __tablename__ = "deal_tallies"
    __table_args__ = (Index("ix_deal_tallies_org_owner", "org_id", "owner_id"),)

    stage_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(10))
    currency: Mapped[str | None] = mapped_column(String(3))  # the deals' own: sums never mix currencies
    expected_month: Mapped[date | None]  # the first day of the month
    closed_month: Mapped[date | None]
    deals: Mapped[int] = mapped_column(default=0)
    value: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))
    weighted: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))  # services/stats/formula.py
    won_days: Mapped[float] = mapped_column(default=0.0)  # created -> closed, summed over won deals
    won_timed: Mapped[int] = mapped_column(default=0)  # won deals with a close time


class ActivityTally(TallyMixin, Base):
    """Live activities of one owner, status and type."""

    __tablename__ = "activity_tallies"
    __table_args__ = (Index("ix_activity_tallies_org_owner", "org_id", "owner_id"),)

    status: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    activities: Mapped[int] = mapped_column(default=0)


class ActivityDayTally(TallyMixin, Base):
    """Live activities of one owner per UTC day, from migration 0041: kind "due", the open ones (pending,
    in progress) by due day; kind "completed", the completed ones by completion day. The dashboard's
    overdue and this week's counts sum whole days here instead of reading every task of their range."""

    __tablename__ = "activity_day_tallies"
    __table_args__ = (Index("ix_activity_day_tallies_org_owner", "org_id", "owner_id"),)

    kind: Mapped[str] = mapped_column(String(10))
    day: Mapped[date]
    activities: Mapped[int] = mapped_column(default=0)

"""The organisation's exchange rates: what one unit of a currency is worth in its default currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import CheckConstraint, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, TimestampMixin


class ExchangeRate(IdMixin, TimestampMixin, OrgScopedMixin, Base):
    """One rate per currency: 1 <currency> = rate <organisation's default currency>, set on set_at."""

    __tablename__ = "exchange_rates"
    __table_args__ = (
        UniqueConstraint("org_id", "currency", name="uq_exchange_rates_org_currency"),
        CheckConstraint("rate > 0", name="exchange_rate_positive"),
    )

    currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 8))
    set_at: Mapped[date]

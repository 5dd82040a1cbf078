"""Bearer tokens of the internal service API: scoped, stored as hashes, rotated with an overlap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import Base, IdMixin, utcnow


class ApiToken(IdMixin, Base):
    """One token: what it may call (`scopes`), for which organisations, until when.

    Only the SHA-256 of the secret is stored (the secret is 256 random bits, so a fast hash is
    enough); `prefix` names the token in lists and logs without revealing it. No org_id column and
    no row-level security: a token is looked up before any organisation is known, like a user at
    sign-in, and it may span several organisations.
    """

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Organisation ids (text) the token may act for, unless all_orgs.
    org_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_orgs: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, org_id: Any, scope: str) -> bool:
        return scope in self.scopes and (self.all_orgs or str(org_id) in self.org_ids)

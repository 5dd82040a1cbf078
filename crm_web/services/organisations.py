"""An organisation's own settings (admins), its calendar, and the getting-started checklist."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from crm_web.errors import ValidationError
from crm_web.extensions import db
from crm_web.models import CURRENCIES, Activity, Contact, Deal, Organization, Role, User, utcnow
from crm_web.permissions import require_role
from crm_web.services.base import Actor, row_or_not_found
from crm_web.services.currencies import rebase
from crm_web.services.history import record_change

ENTITY = "organization"
MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True)
class Checklist:
    """What a new organisation does first; each step ticks itself once done."""

    stages_reviewed: bool
    has_contacts: bool
    has_team: bool

    @property
    def steps_done(self) -> int:
        return sum((self.stages_reviewed, self.has_contacts, self.has_team))


class OrganisationService:
    def __init__(self, actor: Actor, session: Session | None = None):
        self.actor = actor
        self.session = cast(Session, session or db.session)

    def get(self) -> Organization:
        return row_or_not_found(self.session, Organization, self.actor.org_id, "Your organisation no longer exists.")

    def update(
        self,
        *,
        name: str,
        default_currency: str,
        time_zone: str,
        trash_retention_days: int | None,
        sales_can_import: bool | None = None,
        sales_can_publish_views: bool | None = None,
    ) -> Organization:
        """Admins rename the organisation and set its currency, time zone, trash retention, whether
        sales users may import CSV files and whether they may publish saved views (None: unchanged)."""
        require_role(self.actor.role, Role.ADMIN, "change the organisation's settings")
        values: dict[str, Any] = {
            "name": " ".join((name or "").split()),
            "default_currency": default_currency,
            "time_zone": time_zone,
            "trash_retention_days": trash_retention_days,
        }
        if sales_can_import is not None:
            values["sales_can_import"] = bool(sales_can_import)
        if sales_can_publish_views is not None:
            values["sales_can_publish_views"] = bool(sales_can_publish_views)
        errors = {}
        if not values["name"] or len(values["name"]) > 200:
            errors["name"] = "Enter a name of at most 200 characters."
        if default_currency not in CURRENCIES:
            errors["default_currency"] = "Choose a currency from the list."
        if time_zone not in zoneinfo.available_timezones():
            errors["time_zone"] = "Choose a time zone from the list."
        if trash_retention_days is not None and not 1 <= trash_retention_days <= MAX_RETENTION_DAYS:
            errors["trash_retention_days"] = f"Between 1 and {MAX_RETENTION_DAYS} days."
        if errors:
            raise ValidationError("The settings were not saved", errors)
        org = self.get()
        changes = {key: [getattr(org, key), value] for key, value in values.items() if getattr(org, key) != value}
        if changes:
            if "default_currency" in changes:
                rebase(self.session, org.id, org.default_currency, default_currency)
            for key, value in values.items():
                setattr(org, key, value)
            record_change(self.session, self.actor, ENTITY, org, "updated", changes)
            self.session.commit()
        return org

    def mark_stages_reviewed(self) -> None:
        """The checklist's first step, confirmed by a manager or admin."""
        require_role(self.actor.role, Role.MANAGER, "review the pipeline stages")
        org = self.get()
        if org.stages_reviewed_at is None:
            org.stages_reviewed_at = utcnow()
            self.session.commit()

    def getting_started(self, org: Organization) -> Checklist | None:
        """The checklist while the organisation has no deal and no activity yet (one statement), else None."""
        org_id = self.actor.org_id
        row = self.session.execute(
            select(
                exists().where(Deal.org_id == org_id),
                exists().where(Activity.org_id == org_id),
                exists().where(Contact.org_id == org_id, Contact.deleted_at.is_(None)),
                select(func.count()).select_from(User).where(User.org_id == org_id).scalar_subquery(),
            )
        ).one()
        has_deals, has_activities, has_contacts, users = row
        if has_deals or has_activities:
            return None
        return Checklist(
            stages_reviewed=org.stages_reviewed_at is not None, has_contacts=bool(has_contacts), has_team=users > 1
        )


def retention_days(org: Organization, default: int) -> int:
    """How long the organisation keeps its trash (`crm purge-trash` without an age)."""
    return org.trash_retention_days if org.trash_retention_days is not None else default

"""A contact's last activity: the latest moment one of its live activities was logged or completed.

`Contact.last_activity_at` is stored (the contact list shows, sorts and filters on it through an
index), so every write that can change it calls `refresh_last_activity` for the contacts it
touched, in its own transaction: creating, editing (also when an activity moves to another
contact), completing, reopening, deleting, restoring and purging activities, one by one or in bulk.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_web.models import Activity, Contact
from crm_web.services.sql import org_is


def contacts_of_activities(session: Session, org_id: uuid.UUID, activity_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The contacts the given activities (live or trashed) are linked to: one statement."""
    ids = list(activity_ids)
    if not ids:
        return set()
    rows = session.scalars(
        select(Activity.contact_id)
        .where(Activity.org_id == org_id, Activity.id.in_(ids), Activity.contact_id.is_not(None))
        .distinct()
        .execution_options(include_deleted=True)
    )
    return {contact_id for contact_id in rows if contact_id is not None}


def refresh_last_activity(session: Session, org_id: uuid.UUID, contact_ids: Iterable[uuid.UUID] | None) -> None:
    """Recompute the contacts' last activity from their live activities: one UPDATE (none if no contact).
    `contact_ids` None: every contact of the organisation (the demo seeder)."""
    ids = None if contact_ids is None else [contact_id for contact_id in contact_ids if contact_id is not None]
    if ids is not None and not ids:
        return
    dialect = session.get_bind().dialect.name
    latest = (
        select(func.max(func.coalesce(Activity.completed_at, Activity.created_at)))
        # org_is: on SQLite the contact's own activities (ix_activities_contact), not the organisation's
        .where(
            org_is(Activity.org_id, org_id, dialect), Activity.contact_id == Contact.id, Activity.deleted_at.is_(None)
        )
        .correlate(Contact)
        .scalar_subquery()
    )
    session.execute(
        update(Contact)
        .where(Contact.org_id == org_id, *([] if ids is None else [Contact.id.in_(ids)]))
        .values(last_activity_at=latest, updated_at=Contact.updated_at)  # not an edit of the contact
        .execution_options(synchronize_session=False)
    )

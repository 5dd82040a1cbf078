"""Notifications: a record assigned to a user, a deal of theirs moved, won or lost, a mention in an
activity note (all by someone else), and reminders of their activities (due soon, overdue).

The first kinds are written by the change itself, in its transaction (`notify_change`, called by
BaseService.history for every single-record change). Reminders need no cron: they are derived when
the user's bell asks (`remind`, one SELECT and at most one INSERT), from the clock (crm_web/clock.py),
and stored with a dedupe key unique per user (the activity and its due time), so none is ever stored
twice, whichever process or tab computes it first; a rescheduled activity reminds again.

Kinds a user turned off (/account) are not shown; their rows are not written either when the
recipient's settings are at hand.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crm_web import clock
from crm_web.models import NOTIFICATION_KINDS, OPEN_ACTIVITY_STATUSES, Activity, Notification, User
from crm_web.services import live
from crm_web.services.base import Actor, BaseService
from crm_web.services.history import label_of

PAGE_SIZE = 20
# Overdue notices for activities that fell due at most this long ago (a new user is not flooded).
OVERDUE_HORIZON = timedelta(days=1)
# Reminders of at most this many activities per computation (the rest at the next).
REMINDER_BATCH = 100
# When nothing is due, the bell computes reminders again after this long at the latest.
RECHECK = timedelta(hours=6)
ASSIGNABLE = ("deal", "lead", "contact", "activity")
_MENTION = re.compile(r"@([^\s@,;:!?()]+(?:[ ][^\s@,;:!?()]+)?)")


def muted(user: Any) -> set[str]:
    return {kind for kind in (getattr(user, "muted_notifications", "") or "").split(",") if kind}


@dataclass
class NotificationPage:
    items: list[Notification]
    page: int
    has_next: bool
    unread: int


def notify_change(
    session: Session, actor: Actor, entity_type: str, obj: Any, action: str, changes: dict[str, Any] | None
) -> None:
    """The notifications a change of one record makes (never for the actor themselves)."""
    changes = changes or {}
    notes: list[tuple[uuid.UUID, str, str]] = []  # (user, kind, detail)
    owner = getattr(obj, "owner_id", None)
    if entity_type in ASSIGNABLE and owner is not None and owner != actor.user_id:
        if action == "created" or (action in ("updated", "moved") and "owner_id" in changes):
            notes.append((owner, "assigned", f"{actor.name or 'Someone'} assigned this {entity_type} to you"))
        elif entity_type == "deal" and action in ("updated", "moved"):
            status = changes.get("status")
            if status and status[1] in ("won", "lost"):
                notes.append((owner, f"deal_{status[1]}", f"{actor.name or 'Someone'} marked it {status[1]}"))
            elif "stage" in changes or "stage_id" in changes:
                stage = changes.get("stage")
                to = f" to {stage[1]}" if stage and stage[1] else ""
                notes.append((owner, "deal_moved", f"{actor.name or 'Someone'} moved it{to}"))
    if entity_type == "activity" and action in ("created", "updated"):
        text = changes["description"][1] if "description" in changes else None
        if action == "created":
            text = getattr(obj, "description", None)
        if text and "@" in text:
            notes.extend(
                (user, "mentioned", f"{actor.name or 'Someone'} mentioned you")
                for user in _mentioned(session, actor, text)
                if user != actor.user_id
            )
    seen: set[tuple[uuid.UUID, str]] = set()
    for user_id, kind, detail in notes:
        if (user_id, kind) in seen:
            continue
        seen.add((user_id, kind))
        session.add(
            Notification(
                org_id=actor.org_id,
                user_id=user_id,
                kind=kind,
                entity_type=entity_type,
                entity_id=obj.id,
                label=label_of(obj),
                detail=detail[:255],
                actor_id=actor.user_id,
                actor_name=actor.name[:200],
            )
        )


def _mentioned(session: Session, actor: Actor, text: str) -> list[uuid.UUID]:
    """The active users of the organisation named `@Full Name` or `@First` (when only one is called so)
    in the text: one SELECT, only for a note with an @ in it."""
    words = {match.lower() for match in _MENTION.findall(text)}
    words |= {match.split(" ")[0].lower() for match in _MENTION.findall(text)}
    if not words:
        return []
    users = session.execute(select(User.id, User.name).where(User.org_id == actor.org_id, User.active)).all()
    firsts: dict[str, list[uuid.UUID]] = {}
    for user_id, name in users:
        firsts.setdefault(name.split(" ")[0].lower(), []).append(user_id)
    found = [user_id for user_id, name in users if name.lower() in words]
    found += [ids[0] for first, ids in firsts.items() if first in words and len(ids) == 1]
    return list(dict.fromkeys(found))


class NotificationService(BaseService[Notification]):
    """The signed-in user's own notifications."""

    model = Notification
    entity_type = "notification"

    def _mine(self) -> Any:
        return self.scoped().where(Notification.user_id == self.actor.user_id)

    def _shown(self, user: Any) -> list[Any]:
        hidden = sorted(muted(user))
        return [Notification.kind.not_in(hidden)] if hidden else []

    def unread_count(self, user: Any) -> int:
        stmt = (
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.org_id == self.org_id,
                Notification.user_id == self.actor.user_id,
                Notification.read_at.is_(None),
                *self._shown(user),
            )
        )
        return int(self.session.scalar(stmt) or 0)

    def page(self, user: Any, page: int = 1, per_page: int = PAGE_SIZE) -> NotificationPage:
        """One page, newest first: the rows (one more, to know there is a next page) and the unread count."""
        page = max(1, page)
        rows = list(
            self.session.scalars(
                self._mine()
                .where(*self._shown(user))
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .offset((page - 1) * per_page)
                .limit(per_page + 1)
            )
        )
        return NotificationPage(rows[:per_page], page, len(rows) > per_page, self.unread_count(user))

    def mark_read(self, notification_id: uuid.UUID) -> None:
        self.session.execute(
            update(Notification)
            .where(
                Notification.org_id == self.org_id,
                Notification.user_id == self.actor.user_id,
                Notification.id == notification_id,
                Notification.read_at.is_(None),
            )
            .values(read_at=clock.now())
        )
        self.commit()

    def mark_all_read(self) -> int:
        result: Any = self.session.execute(
            update(Notification)
            .where(
                Notification.org_id == self.org_id,
                Notification.user_id == self.actor.user_id,
                Notification.read_at.is_(None),
            )
            .values(read_at=clock.now())
        )
        self.commit()
        return int(result.rowcount or 0)

    def remind(self, user: Any, now: datetime | None = None) -> datetime:
        """Store the reminders due by `now` (due soon: `reminder_minutes` before the due time; overdue: at
        it), each once; returns when the next one falls due (the bell need not look before)."""
        now = now or clock.now()
        lead = timedelta(minutes=max(0, int(getattr(user, "reminder_minutes", 15) or 0)))
        hidden = muted(user)
        rows = self.session.execute(
            select(Activity.id, Activity.subject, Activity.due_at)
            .where(
                Activity.org_id == self.org_id,
                Activity.owner_id == self.actor.user_id,
                Activity.deleted_at.is_(None),
                Activity.status.in_(OPEN_ACTIVITY_STATUSES),
                Activity.due_at > now - OVERDUE_HORIZON,
                Activity.due_at <= now + lead + RECHECK,
            )
            .order_by(Activity.due_at)
            .limit(REMINDER_BATCH)
        ).all()
        upcoming = [now + RECHECK]
        values = []
        zone = self.actor.zone
        for activity_id, subject, due in rows:
            due_at = cast(datetime, due)  # never None: the WHERE compares it
            local = due_at.astimezone(zone)
            if due_at <= now:
                kind, key, detail = "overdue", f"overdue:{activity_id}:{due_at:%Y%m%d%H%M}", "Overdue since"
            elif due_at - lead <= now:
                kind, key, detail = "due_soon", f"due_soon:{activity_id}:{due_at:%Y%m%d%H%M}", "Due at"
                upcoming.append(due_at)
            else:
                upcoming.append(due_at - lead)
                continue
            if kind in hidden:
                continue
            values.append(
                {
                    "id": uuid.uuid4(),
                    "org_id": self.org_id,
                    "user_id": self.actor.user_id,
                    "kind": kind,
                    "entity_type": "activity",
                    "entity_id": activity_id,
                    "label": (subject or "")[:255],
                    "detail": f"{detail} {local:%H:%M} ({local:%a %d %b})",
                    "actor_id": None,
                    "actor_name": "",
                    "dedupe_key": key,
                    "created_at": now,
                }
            )
        if values:
            # Most reminders a user is due were stored by an earlier look (the bell polls): read which,
            # through the (user, key) unique index, rather than send every one again to be refused.
            stored_keys = set(
                self.session.scalars(
                    select(Notification.dedupe_key).where(
                        Notification.org_id == self.org_id,
                        Notification.user_id == self.actor.user_id,
                        Notification.dedupe_key.in_([value["dedupe_key"] for value in values]),
                    )
                )
            )
            values = [value for value in values if value["dedupe_key"] not in stored_keys]
        if values:
            insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
            stored = self.session.execute(
                insert(Notification)
                .values(values)
                .on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
                .returning(Notification.id)
            ).all()
            # None stored when another tab or process stored them first: nothing new to tell.
            if stored and self.actor.user_id is not None:
                live.note_notified(self.session, self.org_id, self.actor.user_id)
            self.commit()
        return min(upcoming)


def kind_choices() -> list[tuple[str, str]]:
    return list(NOTIFICATION_KINDS.items())

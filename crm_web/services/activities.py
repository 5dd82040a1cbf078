"""Activities (tasks, notes, calls, emails, meetings): lists, quick views, timelines and writes.

Every list loads its contact/company/deal/lead/owner in the same SELECT (joinedload), so a page
costs the same number of statements for 1 row or 100. Their numbers are services/stats/activities.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, case, func, literal, or_, select
from sqlalchemy.orm import Session, joinedload

from crm_web import clock
from crm_web.entities import ACTIVITY, activity_links
from crm_web.errors import BadRequest, NotFound
from crm_web.models import (
    ACTIVITY_PRIORITIES,
    ACTIVITY_STATUSES,
    ACTIVITY_TYPES,
    OPEN_ACTIVITY_STATUSES,
    Activity,
    Company,
    Contact,
    Deal,
    Lead,
    User,
    utcnow,
)
from crm_web.services.base import EXPORT_BATCH, Actor, BaseService
from crm_web.services.last_activity import contacts_of_activities, refresh_last_activity
from crm_web.services.pagination import Cursor, Page
from crm_web.services.sql import AnySelect
from crm_web.services.stats.units import day_bounds
from crm_web.services.text_search import text_match

QUICK_VIEWS = [
    ("mine", "My open"),
    ("overdue", "Overdue"),
    ("today", "Due today"),
    ("upcoming", "Upcoming 7 days"),
    ("all", "All"),
]
QUICK_VIEW_KEYS = tuple(key for key, _ in QUICK_VIEWS)
UPCOMING_DAYS = 7
TIMELINE_LIMIT = 50

# What an activity's row shows of the records it links to (components/activity_row.html `related`):
# their names, not every column of four more records per row. Anything else read from them raises.
LINK_NAMES = (
    joinedload(Activity.contact).load_only(Contact.first_name, Contact.last_name, raiseload=True),
    joinedload(Activity.company).load_only(Company.name, raiseload=True),
    joinedload(Activity.deal).load_only(Deal.name, raiseload=True),
    joinedload(Activity.lead).load_only(Lead.first_name, Lead.last_name, raiseload=True),
)

# The records an activity can be linked to (the entity registry): form/query name -> (column, model).
LINKS: dict[str, tuple[str, Any]] = {e.name: (e.activity_link, e.model) for e in activity_links() if e.activity_link}


def _open() -> ColumnElement[bool]:
    return Activity.status.in_(OPEN_ACTIVITY_STATUSES)


@dataclass(frozen=True)
class Links:
    """The optional record an activity is created for (prefills the form, scopes a timeline)."""

    contact: uuid.UUID | None = None
    company: uuid.UUID | None = None
    deal: uuid.UUID | None = None
    lead: uuid.UUID | None = None

    def items(self) -> list[tuple[str, uuid.UUID]]:
        return [(name, value) for name in LINKS if (value := getattr(self, name)) is not None]

    @property
    def is_empty(self) -> bool:
        return not self.items()

    def as_args(self) -> dict[str, uuid.UUID]:
        """Keyword arguments for url_for and the timeline macro."""
        return dict(self.items())


class ActivityService(BaseService[Activity]):
    """Org-scoped activities; sales reps change only their own, managers and admins any."""

    entity = ACTIVITY
    SORT_FIELDS: ClassVar[dict[str, Any]] = {
        "due": Activity.due_at,
        "subject": Activity.subject,
        "type": Activity.type,
        "status": Activity.status,
        "priority": Activity.priority,
    }
    DEFAULT_SORT = "due"
    WRITABLE_FIELDS = frozenset(
        {
            "type",
            "subject",
            "description",
            "status",
            "priority",
            "due_at",
            "duration_minutes",
            "owner_id",
            "contact_id",
            "company_id",
            "deal_id",
            "lead_id",
        }
    )

    # --- reading -----------------------------------------------------------------

    def edit_query(self) -> AnySelect:
        return self.optimized_query()

    def optimized_query(self) -> AnySelect:
        """Activities with everything a row shows, joined into the same SELECT."""
        return self.scoped().options(
            joinedload(Activity.contact),
            joinedload(Activity.company),
            joinedload(Activity.deal),
            joinedload(Activity.lead),
            joinedload(Activity.owner),
        )

    def view_criteria(self, view: str, *, now: datetime | None = None) -> list[ColumnElement[bool]]:
        """The WHERE clauses of a quick view (My open, Overdue, Due today, Upcoming 7 days, All)."""
        now = now or clock.now()
        if view == "mine":
            return [Activity.owner_id == self.actor.user_id, _open()]
        if view == "overdue":
            return [_open(), Activity.due_at < now]
        if view == "today":
            start, end = day_bounds(now, self.actor.zone)
            return [_open(), Activity.due_at >= start, Activity.due_at < end]
        if view == "upcoming":
            return [_open(), Activity.due_at >= now, Activity.due_at < now + timedelta(days=UPCOMING_DAYS)]
        if view == "all":
            return []
        raise BadRequest(f"Unknown view {view!r}.")

    def list_page(
        self,
        *,
        view: str = "all",
        q: str = "",
        scope: str = "all",
        filter_spec: Any = None,
        sort: str | None = None,
        page: int = 1,
        per_page: int = 25,
        cursor: Cursor | None = None,
        now: datetime | None = None,
    ) -> Page[Activity]:
        """One page of a quick view, searched and filtered: the page's ids with its bounded count, then
        one joined SELECT."""
        criteria = self.view_list_criteria(view, q=q, scope=scope, filter_spec=filter_spec, now=now)
        return self.page_of(criteria, None, sort=sort, page=page, per_page=per_page, cursor=cursor)

    def view_list_criteria(
        self, view: str, *, q: str = "", scope: str = "all", filter_spec: Any = None, now: datetime | None = None
    ) -> list[ColumnElement[bool]]:
        """The quick view, the search, "mine" and the filter as WHERE clauses (the list and its export)."""
        criteria = self.view_criteria(view, now=now)
        match = text_match(self.dialect, q, [Activity.subject])
        if match is not None:  # the exact words only: subjects have no trigram index for a typo search
            criteria.append(match.clause)
        if scope == "mine":
            criteria.append(Activity.owner_id == self.actor.user_id)
        clause = self.filter_clause(filter_spec, now=now)
        if clause is not None:
            criteria.append(clause)
        return criteria

    def export_view(
        self, *, view: str = "all", filter_spec: Any = None, q: str = "", scope: str = "all", sort: str | None = None
    ) -> Iterator[Activity]:
        """Every activity of the quick view, searched and filtered, in batches (the CSV export). Bad
        input (an unknown sort) raises here, before the response starts streaming."""
        criteria = self.view_list_criteria(view, q=q, scope=scope, filter_spec=filter_spec)
        stmt = self.export_query().where(*criteria).order_by(*self.search_order(sort, None))
        return self.export_stream(stmt.execution_options(yield_per=EXPORT_BATCH))

    def upcoming(self, *, days: int = UPCOMING_DAYS, limit: int = 10, now: datetime | None = None) -> list[Activity]:
        """Open activities due in the next `days` days, soonest first."""
        now = now or clock.now()
        stmt = self.optimized_query().where(
            _open(), Activity.due_at >= now, Activity.due_at < now + timedelta(days=days)
        )
        return list(self.session.scalars(stmt.order_by(Activity.due_at, Activity.id).limit(limit)).unique())

    def overdue(self, *, limit: int = 10, now: datetime | None = None) -> list[Activity]:
        """Open activities past their due time, most overdue first."""
        stmt = self.optimized_query().where(_open(), Activity.due_at < (now or clock.now()))
        return list(self.session.scalars(stmt.order_by(Activity.due_at, Activity.id).limit(limit)).unique())

    def timeline(self, *, links: Links, limit: int = TIMELINE_LIMIT) -> list[Activity]:
        """A record's activities, newest first (by due time, else creation), with the names of the
        records each links to and of its owner (components/timeline.html): one joined SELECT."""
        if links.is_empty:
            raise BadRequest("A timeline needs a contact, company, deal or lead.")
        clauses = [getattr(Activity, LINKS[name][0]) == value for name, value in links.items()]
        stmt = (
            self.scoped()
            .options(*LINK_NAMES, joinedload(Activity.owner).load_only(User.name, raiseload=True))
            .where(or_(*clauses))
            .order_by(func.coalesce(Activity.due_at, Activity.created_at).desc(), Activity.id)
        )
        return list(self.session.scalars(stmt.limit(limit)).unique())

    def link_labels(self, links: Links) -> dict[str, str]:
        """Names of the records a new activity is created for; another org's id -> NotFound."""
        labels: dict[str, str] = {}
        for name, value in links.items():
            _column, model = LINKS[name]
            obj = self.session.get(model, value)
            if obj is None or obj.org_id != self.org_id or obj.deleted_at is not None:
                raise NotFound(f"That {name} does not exist or was deleted.")
            labels[name] = getattr(obj, "full_name", None) or obj.name
        return labels

    # --- writing -----------------------------------------------------------------

    def clean(self, values: dict[str, Any], obj: Activity | None = None) -> dict[str, Any]:
        """Choices are known values; linked records and the owner belong to this organisation."""
        errors: dict[str, str] = {}
        for name, choices in (
            ("type", ACTIVITY_TYPES),
            ("status", ACTIVITY_STATUSES),
            ("priority", ACTIVITY_PRIORITIES),
        ):
            if name in values and values[name] not in dict(choices):
                errors[name] = f"Unknown {name} {values[name]!r}."
        if "subject" in values:
            values["subject"] = (values["subject"] or "").strip()
            if not values["subject"]:
                errors["subject"] = "A subject is required."
        for name, (column, model) in LINKS.items():
            value = values.get(column)
            if value is not None and not self._exists(model, value):
                errors[column] = f"That {name} does not exist or was deleted."
        self.refuse_errors(values, errors)
        if "status" in values:
            was_completed = obj is not None and obj.status == "completed"
            if values["status"] == "completed" and not was_completed:
                values["completed_at"] = utcnow()
            elif values["status"] != "completed":
                values["completed_at"] = None
        return values

    def _exists(self, model: Any, entity_id: uuid.UUID) -> bool:
        return bool(
            self.session.scalar(
                select(func.count()).select_from(model).where(model.id == entity_id, model.org_id == self.org_id)
            )
        )

    def _writable(self, values: Mapping[str, Any]) -> dict[str, Any]:
        writable = super()._writable(values)
        if "completed_at" in values:
            writable["completed_at"] = values["completed_at"]
        return writable

    # Every write keeps the linked contacts' last activity true (services/last_activity.py), in the
    # write's own transaction: single writes note their activity's contact in `history`, bulk writes
    # theirs before the UPDATE, and `commit` recomputes them first.

    def __init__(self, actor: Actor, session: Session | None = None):
        super().__init__(actor, session)
        self._touched: set[uuid.UUID | None] = set()

    def history(self, obj: Any, action: str, changes: dict[str, Any] | None = None) -> None:
        super().history(obj, action, changes)
        self._touched.add(obj.contact_id)

    def commit(self) -> None:
        touched = {contact_id for contact_id in self._touched if contact_id is not None}
        self._touched = set()
        if touched:
            self.session.flush()
            refresh_last_activity(self.session, self.org_id, touched)
        super().commit()

    def create(self, **values: Any) -> Activity:
        """Create an activity (owned by the actor unless an owner is given)."""
        return self.get(super().create(**values).id)

    def update(
        self,
        entity_id: uuid.UUID,
        *,
        expected_version: int | None = None,
        expected_values: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> Activity:
        # The contact it leaves behind (a moved activity) is recomputed too.
        self._touched.add(self.session.scalar(self.scoped(select(Activity.contact_id)).where(Activity.id == entity_id)))
        obj = super().update(entity_id, expected_version=expected_version, expected_values=expected_values, **values)
        return self.get(obj.id)

    def set_completed(self, activity_id: uuid.UUID, *, completed: bool) -> Activity:
        """One-click complete or reopen (reopened activities go back to pending)."""
        return self.update(activity_id, status="completed" if completed else "pending")

    # --- bulk changes (BaseService.bulk_set and its Undo, bulk_revert) ---------------------------

    BULK_FIELDS: ClassVar[frozenset[str]] = frozenset({"owner_id", "status", "due_at"})

    def bulk_complete(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
        """Complete the selected activities; {id: previous status} of those that were not completed."""
        return self.bulk_set("status", ids, "completed")

    def bulk_reschedule(self, ids: Iterable[uuid.UUID], *, day: date) -> dict[uuid.UUID, Any]:
        """Move the selected activities to `day`, each keeping its time of day (09:00 when it had no due
        date, as in the form); {id: previous due} of those that moved."""

        def moved(due: datetime | None) -> datetime:
            at = (
                due.astimezone(UTC).time().replace(tzinfo=None) if due and due.tzinfo else (due.time() if due else None)
            )
            return datetime.combine(day, at or time(9, 0), tzinfo=UTC)

        return self.bulk_set("due_at", ids, compute=moved)

    def check_bulk_values(self, name: str, values: Iterable[Any]) -> None:
        values = list(values)
        if name == "status" and not set(values) <= set(dict(ACTIVITY_STATUSES)):
            raise BadRequest("Unknown activity status.")
        super().check_bulk_values(name, values)

    def bulk_values(self, column: Any, new: Mapping[uuid.UUID, Any]) -> dict[str, Any]:
        """A status change moves `completed_at` as the form does: set when completed, cleared otherwise."""
        if column.key != "status":
            return {}
        done = [entity_id for entity_id, status in new.items() if status == "completed"]
        if not done:
            return {"completed_at": None}
        now = literal(utcnow(), Activity.completed_at.type)
        return {"completed_at": case((Activity.id.in_(done), func.coalesce(Activity.completed_at, now)), else_=None)}

    def _bulk_update(self, column: Any, new: Mapping[uuid.UUID, Any]) -> None:
        self._touched.update(contacts_of_activities(self.session, self.org_id, new))
        super()._bulk_update(column, new)

    def restore(self, entity_id: uuid.UUID) -> Activity:
        return self.get(super().restore(entity_id).id)

    def delete_many(self, ids: Iterable[uuid.UUID], *, criteria: Sequence[ColumnElement[bool]] = ()) -> list[uuid.UUID]:
        ids = list(ids)
        self._touched.update(contacts_of_activities(self.session, self.org_id, ids))
        return super().delete_many(ids, criteria=criteria)

    def restore_many(self, ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        ids = list(ids)
        self._touched.update(contacts_of_activities(self.session, self.org_id, ids))
        return super().restore_many(ids)

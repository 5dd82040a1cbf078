"""The trash: every soft-deleted record of an organisation in one list, restore, permanent delete
and retention.

Managers and admins may look at the trash. The restore policy, one code path for the trash page, the
per-record restore and every Undo (`TrashService.restore`): whoever deleted a record may restore it;
admins restore anything; only admins purge. Restore and purge change only rows still in the trash
(`... WHERE deleted_at IS NOT NULL RETURNING id`) and write history for exactly those rows, so a
restore racing a purge leaves either a live record or a purged one, never a history that contradicts
the row. Purging
is a plain DELETE: the schema's foreign keys (ON DELETE SET NULL / CASCADE) unlink related
rows and remove tag links, on PostgreSQL and on SQLite (PRAGMA foreign_keys=ON, see
database.py). Every restore and purge writes the record history in the same transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import String, and_, delete, func, literal_column, select, union_all, update
from sqlalchemy.orm import aliased

from crm_web.entities import ENTITIES, Entity
from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import (
    Organization,
    Role,
    User,
    utcnow,
)
from crm_web.permissions import require_role
from crm_web.services.base import Actor, ActorService
from crm_web.services.history import HistoryItem, history_for, readable, record_change
from crm_web.services.integrity import commit_or_refuse
from crm_web.services.pagination import Page, clamp_page, clamp_per_page

# Deletes and history inserts go in batches: one IN list per statement stays well below driver limits.
BATCH = 500


# Every entity of the registry can be in the trash.
TRASH_KINDS: dict[str, Entity] = ENTITIES
TRASH_TYPES: tuple[str, ...] = tuple(TRASH_KINDS)


class TrashRef(NamedTuple):
    """A reference to a record in the trash: ("deal", id)."""

    entity_type: str
    entity_id: uuid.UUID

    @property
    def key(self) -> str:
        return f"{self.entity_type}:{self.entity_id}"


@dataclass(frozen=True)
class TrashItem:
    """One row of the trash list."""

    entity_type: str
    id: uuid.UUID
    label: str
    deleted_at: datetime
    deleted_by_id: uuid.UUID | None
    deleted_by_name: str | None

    @property
    def key(self) -> str:
        return f"{self.entity_type}:{self.id}"

    @property
    def kind(self) -> Entity:
        return TRASH_KINDS[self.entity_type]

    @property
    def display_label(self) -> str:
        return self.label or f"(unnamed {self.entity_type})"


@dataclass
class TrashEntry:
    """One record in the trash with its history (the trash detail page)."""

    item: TrashItem
    history: list[HistoryItem]


@dataclass
class RestoreResult:
    restored: list[TrashItem]
    # Deals whose stage or pipeline no longer exists, and where they were put ("Sales › Lead in").
    relocated: list[tuple[TrashItem, str]] = field(default_factory=list)
    missing: int = 0

    @property
    def message(self) -> str:
        count = len(self.restored)
        text = f"Restored {self.restored[0].display_label}." if count == 1 else f"Restored {count} records."
        for item, where in self.relocated:
            text += f" {item.display_label} was moved to {where} because its stage no longer exists."
        if self.missing:
            text += f" {self.missing} selected record(s) were no longer in the trash."
        return text


@dataclass
class PurgeResult:
    counts: dict[str, int]
    items: list[TrashItem]
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def message(self) -> str:
        if self.total == 1 and self.items:
            return f"Permanently deleted {self.items[0].display_label}."
        return f"Permanently deleted {self.total} records."

    def summary(self) -> str:
        """ "2 contacts, 0 companies, ..." for the CLI."""
        return ", ".join(f"{n} {TRASH_KINDS[t].plural if n != 1 else t}" for t, n in self.counts.items())


def link_is_trashed(obj: Any, relation: str, fk: str | None = None) -> bool:
    """True when `obj` links to a record that is in the trash.

    The soft-delete filter (models/base.py) hides trashed rows from eager loads too, so a deal
    whose company was deleted has `company_id` set but `company` None: pages show
    "(deleted company)" there. Restoring the company brings the link back.
    """
    return getattr(obj, relation) is None and getattr(obj, fk or f"{relation}_id") is not None


class TrashService(ActorService):
    """The organisation's trash (managers view, admins restore and purge)."""

    # --- reading -----------------------------------------------------------------------

    def _union(
        self,
        *,
        entity_type: str | None = None,
        q: str = "",
        refs: Sequence[TrashRef] | None = None,
        deleted_before: datetime | None = None,
        newest: int | None = None,
    ) -> Any:
        """All trashed rows of the org as one UNION ALL subquery of (entity_type, id, label, deleted_at, deleted_by_id);
        with `newest`, only the newest `newest` rows of each table (enough for any page up to that row)."""
        wanted_ids: dict[str, list[uuid.UUID]] | None = None
        if refs is not None:
            wanted_ids = defaultdict(list)
            for ref in refs:
                wanted_ids[ref.entity_type].append(ref.entity_id)
        selects = []
        for kind in TRASH_KINDS.values():
            if entity_type and kind.name != entity_type:
                continue
            if wanted_ids is not None and not wanted_ids.get(kind.name):
                continue
            model = kind.model
            label = kind.trash.label
            stmt = select(
                # A constant from the whitelist above, never user input.
                literal_column(f"'{kind.name}'", String(20)).label("entity_type"),
                model.id.label("id"),
                label.label("label"),
                model.deleted_at.label("deleted_at"),
                model.deleted_by_id.label("deleted_by_id"),
            ).where(model.org_id == self.actor.org_id, model.deleted_at.is_not(None))
            if q:
                stmt = stmt.where(label.icontains(q, autoescape=True))
            if wanted_ids is not None:
                stmt = stmt.where(model.id.in_(wanted_ids[kind.name]))
            if deleted_before is not None:
                stmt = stmt.where(model.deleted_at < deleted_before)
            if newest is not None:
                # The list's order restricted to one table (its entity_type is constant), so these rows
                # hold every row of that table the page can show; a backward scan of ix_<table>_org_trashed
                # serves it. Wrapped: SQLite allows no ORDER BY/LIMIT inside a compound select.
                branch = stmt.order_by(model.deleted_at.desc(), model.id).limit(newest).subquery()
                stmt = select(*branch.c)
            selects.append(stmt)
        if not selects:
            return None
        return union_all(*selects).subquery("trash")

    def _items(
        self, trash: Any, *, limit: int | None = None, offset: int = 0, oldest_first: bool = False
    ) -> list[TrashItem]:
        deleter = aliased(User)
        order = trash.c.deleted_at.asc() if oldest_first else trash.c.deleted_at.desc()
        stmt = (
            select(
                trash.c.entity_type, trash.c.id, trash.c.label, trash.c.deleted_at, trash.c.deleted_by_id, deleter.name
            )
            # The organisation's users only: its planner then reads them from ix_users_org_id, not
            # every organisation's users for a hash join (row-level security filters, it does not cut).
            .outerjoin(deleter, and_(deleter.id == trash.c.deleted_by_id, deleter.org_id == self.actor.org_id))
            .order_by(order, trash.c.entity_type, trash.c.id)
            # The rows ARE the soft-deleted ones: skip the global "not deleted" filter.
            .execution_options(include_deleted=True)
        )
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        return [
            TrashItem(
                entity_type=row[0],
                id=row[1],
                label=row[2] or "",
                deleted_at=row[3],
                deleted_by_id=row[4],
                deleted_by_name=row[5],
            )
            for row in self.session.execute(stmt)
        ]

    def list_trash(
        self, *, entity_type: str | None = None, q: str = "", page: int = 1, per_page: int = 25
    ) -> Page[TrashItem]:
        """Managers and admins see the org's trash, newest first: one count and one page query."""
        require_role(self.actor.role, Role.MANAGER, "open the trash")
        if entity_type is not None and entity_type not in TRASH_KINDS:
            raise ValidationError(f"Unknown record type {entity_type!r}.", {"type": "Unknown record type."})
        per_page = clamp_per_page(per_page)
        trash = self._union(entity_type=entity_type, q=q.strip())
        total = (
            self.session.scalar(select(func.count()).select_from(trash).execution_options(include_deleted=True)) or 0
        )
        page = clamp_page(page, total, per_page)
        offset = (page - 1) * per_page
        newest = self._union(entity_type=entity_type, q=q.strip(), newest=offset + per_page)
        items = self._items(newest, limit=per_page, offset=offset) if total else []
        return Page(items=items, total=total, page=page, per_page=per_page)

    def resolve(self, refs: Sequence[TrashRef]) -> list[TrashItem]:
        """The referenced records that are really in this org's trash (others are ignored)."""
        if not refs:
            return []
        trash = self._union(refs=refs)
        return self._items(trash) if trash is not None else []

    def _resolve_all(self, refs: Sequence[TrashRef]) -> tuple[list[TrashItem], int]:
        unique = list(dict.fromkeys(refs))
        if not unique:
            raise ValidationError("Select at least one record.", {"item": "Select at least one record."})
        found = self.resolve(unique)
        if not found:
            raise NotFound("The selected records are not in the trash.")
        return found, len(unique) - len(found)

    def get_entry(self, entity_type: str, entity_id: uuid.UUID) -> TrashEntry:
        """One trashed record with its history (managers and admins)."""
        require_role(self.actor.role, Role.MANAGER, "open the trash")
        if entity_type not in TRASH_KINDS:
            raise NotFound("No such record type.")
        found = self.resolve([TrashRef(entity_type, entity_id)])
        if not found:
            raise NotFound(f"That {entity_type} is not in the trash.")
        entries = history_for(self.actor, entity_type, entity_id, session=self.session)
        # In words, as on the detail pages: names (a trashed record's own links read "(deleted)"), labels, dates.
        return TrashEntry(item=found[0], history=readable(self.actor, entity_type, entries, session=self.session))

    def preview_purge(self, refs: Sequence[TrashRef]) -> list[TrashItem]:
        """What a permanent delete of `refs` would remove (admins only): named on the confirmation."""
        require_role(self.actor.role, Role.ADMIN, "delete permanently")
        found, _ = self._resolve_all(refs)
        return found

    # --- writing -----------------------------------------------------------------------

    def commit(self) -> None:
        commit_or_refuse(self.session)

    def can_restore(self, item: TrashItem) -> bool:
        """The restore policy: whoever deleted a record restores it (Undo); admins restore anything."""
        return self.actor.has_role(Role.ADMIN) or (
            item.deleted_by_id is not None and item.deleted_by_id == self.actor.user_id
        )

    def restore(self, refs: Sequence[TrashRef], *, from_trash: bool = True) -> RestoreResult:
        """Restore records from the trash: the one code path of the trash page, the per-record restore and
        every Undo. Whoever deleted a record may restore it, admins anything (else 403). Only rows still in
        the trash (and, for non-admins, still deleted by the actor) change, in one UPDATE ... RETURNING per
        type; history, re-homing of deals whose stage is gone, and the message cover exactly those rows."""
        found, missing = self._resolve_all(refs)
        if not all(self.can_restore(item) for item in found):
            raise PermissionDenied("You can only restore what you deleted yourself.")
        restored: list[TrashItem] = []
        relocated: list[tuple[TrashItem, str]] = []
        after: list[Callable[[], None]] = []
        for entity_type, items in _group(found).items():
            kind = TRASH_KINDS[entity_type]
            model, rule = kind.model, kind.trash
            if rule.dependents is not None:
                after.append(rule.dependents(self.session, self.actor.org_id, [item.id for item in items]))
            where = [
                model.org_id == self.actor.org_id,
                model.id.in_([i.id for i in items]),
                model.deleted_at.is_not(None),
            ]
            if not self.actor.has_role(Role.ADMIN):  # the policy, checked again by the statement itself
                where.append(model.deleted_by_id == self.actor.user_id)
            changed = set(
                self.session.scalars(
                    update(model)
                    .where(*where)
                    .values(deleted_at=None, deleted_by_id=None)
                    .returning(model.id)
                    .execution_options(synchronize_session=False)
                )
            )
            mine = [item for item in items if item.id in changed]
            if not mine:
                continue
            per_id_changes: dict[uuid.UUID, dict[str, Any]] = {}
            if rule.rehome is not None:
                moved, per_id_changes = rule.rehome(self.session, self.actor.org_id, mine)
                relocated += moved
            restored += mine
            context = {**({"from_trash": True} if from_trash else {}), **({"bulk": True} if len(found) > 1 else {})}
            self._record(entity_type, "restored", context, mine, per_id_changes=per_id_changes)
        if not restored:
            self.session.rollback()
            raise NotFound("The selected records are no longer in the trash.")
        for refresh in after:
            refresh()
        self.commit()
        return RestoreResult(restored=restored, relocated=relocated, missing=missing + len(found) - len(restored))

    def purge(self, refs: Sequence[TrashRef]) -> PurgeResult:
        """Admins delete trashed records for good; links to them are set to null, tag links removed."""
        require_role(self.actor.role, Role.ADMIN, "delete permanently")
        found, _ = self._resolve_all(refs)
        purged = self._purge(found)
        self.commit()
        return PurgeResult(counts=_counts(purged), items=purged)

    def purge_older_than(self, *, days: int, dry_run: bool = False) -> PurgeResult:
        """Retention (admins, or the CLI): purge what has been in the trash longer than `days` days."""
        require_role(self.actor.role, Role.ADMIN, "purge the trash")
        if days < 0:
            raise ValidationError("The number of days cannot be negative.", {"days": "Must be zero or more."})
        cutoff = utcnow() - timedelta(days=days)
        trash = self._union(deleted_before=cutoff)
        found = self._items(trash, oldest_first=True)
        if not dry_run and found:
            found = self._purge(found)
            self.commit()
        counts = _counts(found)
        if not dry_run:
            from crm_web.services.custom_fields import CustomFieldService

            # Custom fields in the trash go with the records (their values with them).
            fields = CustomFieldService(self.actor, self.session).purge_trashed_before(cutoff)
            if fields:
                counts["custom field"] = fields
        return PurgeResult(counts=counts, items=found, dry_run=dry_run)

    def _record(
        self,
        entity_type: str,
        action: str,
        context: dict[str, Any] | None,
        items: Sequence[TrashItem],
        *,
        per_id_changes: Mapping[uuid.UUID, dict[str, Any]] | None = None,
    ) -> None:
        """One history entry for the items of one type (each named by its label)."""
        record_change(
            self.session,
            self.actor,
            entity_type,
            None,
            action,
            context,
            entity_ids=[item.id for item in items],
            labels={item.id: item.label for item in items},
            per_id_changes=per_id_changes,
        )

    def _purge(self, items: Sequence[TrashItem]) -> list[TrashItem]:
        """Delete the items still in the trash; the ones deleted."""
        context = {"bulk": True} if len(items) > 1 else None
        purged: list[TrashItem] = []
        after: list[Callable[[], None]] = []
        for entity_type, group in _group(items).items():
            model = TRASH_KINDS[entity_type].model
            dependents = TRASH_KINDS[entity_type].trash.dependents
            if dependents is not None:
                after.append(dependents(self.session, self.actor.org_id, [item.id for item in group]))
            for start in range(0, len(group), BATCH):
                batch = group[start : start + BATCH]
                # Only rows still in the trash go (an Undo may have won the race); the history, which
                # outlives the row (no foreign key), names exactly those.
                gone = set(
                    self.session.scalars(
                        delete(model)
                        .where(
                            model.org_id == self.actor.org_id,
                            model.id.in_([item.id for item in batch]),
                            model.deleted_at.is_not(None),
                        )
                        .returning(model.id)
                        .execution_options(synchronize_session=False)
                    )
                )
                purged_batch = [item for item in batch if item.id in gone]
                purged += purged_batch
                if purged_batch:
                    self._record(entity_type, "purged", context, purged_batch)
        for refresh in after:
            refresh()
        return purged


def purge_expired(
    *, days: int | None, dry_run: bool = False, org_slug: str | None = None, default_days: int = 30
) -> dict[str, PurgeResult]:
    """Retention for every organisation (or one): {org slug: result}. Run by `crm purge-trash`.
    `days` None: each organisation's own retention (Settings › Organisation), else `default_days`."""
    from crm_web.services.organisations import retention_days

    stmt = select(Organization).order_by(Organization.slug)
    if org_slug:
        stmt = stmt.where(Organization.slug == org_slug)
    orgs = list(db.session.scalars(stmt))
    if org_slug and not orgs:
        raise NotFound(f"No organisation with slug {org_slug!r}.")
    results = {}
    for org in orgs:
        system = Actor(org_id=org.id, user_id=None, role=Role.ADMIN, name="Retention")
        age = retention_days(org, default_days) if days is None else days
        results[org.slug] = TrashService(system).purge_older_than(days=age, dry_run=dry_run)
    return results


def parse_ref(raw: str) -> TrashRef | None:
    """ "deal:<uuid>" -> TrashRef; None when malformed or of an unknown type."""
    entity_type, _, raw_id = raw.strip().partition(":")
    if entity_type not in TRASH_KINDS:
        return None
    try:
        return TrashRef(entity_type, uuid.UUID(raw_id))
    except ValueError:
        return None


def _group(items: Iterable[TrashItem]) -> dict[str, list[TrashItem]]:
    groups: dict[str, list[TrashItem]] = defaultdict(list)
    for item in items:
        groups[item.entity_type].append(item)
    return dict(groups)


def _counts(items: Iterable[TrashItem]) -> dict[str, int]:
    counts = dict.fromkeys(TRASH_KINDS, 0)
    for item in items:
        counts[item.entity_type] += 1
    return counts

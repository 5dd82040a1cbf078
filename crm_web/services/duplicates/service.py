"""Duplicates of contacts, companies and leads: the Duplicates page, "Not a duplicate", merge and its Undo.

A merge is one transaction: the survivor takes the chosen value of each field; everything that pointed
at the merged records (deals, activities, contact-company links with their roles, lead conversion
links, contacts' primary company) points at the survivor, tags are united, and the merged records go
to the trash with a history entry naming the survivor. The `merges` row records exactly which rows
moved from where, which links were added and the survivor's values before, so Undo (while the merged
records are still in the trash) moves back exactly that. A row changed since in a way that conflicts
(a moved deal now points elsewhere, a survivor field edited again) is left as it is; Undo first names
those and asks (`UndoPlan.problems`), then does the rest.

Only managers and admins merge or dismiss; sales users propose a merge of a group (stored, shown to
managers and admins, who open the merge screen with it or dismiss it). Everything is scoped to the
actor's organisation (another organisation's id is NotFound).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import combinations
from typing import Any

from sqlalchemy import Date, Numeric, Uuid, and_, delete, func, insert, null, or_, select, update

from crm_web import clock
from crm_web.errors import Conflict, NotFound, ValidationError
from crm_web.models import (
    Activity,
    Company,
    Contact,
    ContactCompany,
    Deal,
    DuplicateDismissal,
    DuplicateScan,
    DuplicateScanGroup,
    DuplicateScanMember,
    Lead,
    Merge,
    MergeProposal,
    Role,
    User,
    company_tags,
    contact_tags,
    lead_tags,
    utcnow,
)
from crm_web.permissions import has_role, require_role
from crm_web.services.base import ActorService
from crm_web.services.conflicts import EditConflict, stale_edit
from crm_web.services.duplicates.matching import MODELS, Group, Matcher, ordered
from crm_web.services.history import jsonable, label_of, record_change
from crm_web.services.integrity import commit_or_refuse
from crm_web.services.pagination import Page, clamp_page

# The fields a merge chooses a value for, in the order the side-by-side table shows them.
MERGE_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": (
        "first_name",
        "last_name",
        "email",
        "phone",
        "mobile",
        "title",
        "department",
        "status",
        "lead_source",
        "primary_company_id",
        "owner_id",
        "linkedin_url",
        "birthday",
        "street",
        "city",
        "state",
        "postal_code",
        "country",
        "notes",
    ),
    "company": (
        "name",
        "website",
        "email",
        "phone",
        "industry",
        "size",
        "employee_count",
        "annual_revenue",
        "owner_id",
        "street",
        "city",
        "state",
        "postal_code",
        "country",
        "description",
    ),
    "lead": (
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "company_name",
        "website",
        "source",
        "status",
        "score",
        "estimated_value",
        "owner_id",
        "notes",
    ),
}

# Columns that point at a record of the entity: (name in the merge's record, model, column).
MOVED: dict[str, tuple[tuple[str, Any, str], ...]] = {
    "contact": (
        ("deals", Deal, "contact_id"),
        ("activities", Activity, "contact_id"),
        ("leads", Lead, "converted_contact_id"),
    ),
    "company": (
        ("deals", Deal, "company_id"),
        ("activities", Activity, "company_id"),
        ("contacts", Contact, "primary_company_id"),
        ("leads", Lead, "converted_company_id"),
    ),
    "lead": (("activities", Activity, "lead_id"),),
}
TAG_TABLES: dict[str, tuple[Any, str]] = {
    "contact": (contact_tags, "contact_id"),
    "company": (company_tags, "company_id"),
    "lead": (lead_tags, "lead_id"),
}
# The contact-company link column on the entity's side, and the other side (links are never doubled).
LINK_SIDES = {"contact": ("contact_id", "company_id"), "company": ("company_id", "contact_id")}
MAX_MERGED = 10
GROUPS_PER_PAGE = 25
# The records of one group a page shows (and loads); a larger group says "and N more" and opens on its
# own, with up to MAX_GROUP_SHOWN (a group chained through shared attributes can be large).
RECORDS_SHOWN = 10
MAX_GROUP_SHOWN = 500
# Live records of an entity above which the Duplicates page reads a stored scan a background job
# computes (config DUPLICATE_SCAN_IN_REQUEST); below, the page scans in its own request.
SCAN_IN_REQUEST = 500
# A scan still "running" after this long lost its worker: "Scan again" is offered again.
SCAN_STUCK_AFTER = timedelta(minutes=30)
# Rows of stored groups (or of their members) written by one statement.
STORE_BATCH = 5000


def _from_json(model: Any, name: str, value: Any) -> Any:
    if value is None:
        return None
    column_type = model.__table__.c[name].type
    if isinstance(column_type, Uuid):
        return uuid.UUID(str(value))
    if isinstance(column_type, Numeric):
        return Decimal(str(value))
    if isinstance(column_type, Date):
        return date.fromisoformat(str(value))
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass
class Proposal:
    """A stored proposal with its live records and who proposed it."""

    id: uuid.UUID
    key: str
    ids: list[uuid.UUID]
    proposed_by: str
    created_at: datetime
    records: list[Any] = field(default_factory=list)


@dataclass
class ShownRecord:
    """What the Duplicates page shows of a record (read as columns, not as the whole record)."""

    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    website: str | None
    created_at: datetime

    @property
    def full_name(self) -> str:
        return self.name


@dataclass
class DuplicatesPage:
    entity_type: str
    groups: list[Group]
    total: int
    trigrams: bool
    # Managers and admins: the open proposals whose records all still exist. Everyone: which of the
    # shown groups are proposed already (group key -> who proposed it).
    proposals: list[Proposal] = field(default_factory=list)
    proposed: dict[str, str] = field(default_factory=dict)
    scan: DuplicateScan | None = None  # the stored scan the groups come from (None: scanned in the request)
    paging: Page[Group] | None = None
    group: uuid.UUID | None = None  # only the group holding this record, whole

    @property
    def can_rescan(self) -> bool:
        """Not while a scan runs, unless it has run so long that its worker must have died."""
        if self.scan is None:
            return False
        if self.scan.status != "running":
            return True
        started = self.scan.started_at
        if started.tzinfo is None:  # SQLite returns naive UTC
            started = started.replace(tzinfo=UTC)
        return clock.now() - started > SCAN_STUCK_AFTER


def group_key(ids: list[uuid.UUID]) -> str:
    return ",".join(sorted(str(i) for i in ids))


@dataclass
class MergeField:
    name: str
    values: dict[uuid.UUID, Any]  # record id -> value shown
    chosen: uuid.UUID  # whose value survives by default

    @property
    def label(self) -> str:
        return self.name.removesuffix("_id").replace("_", " ").capitalize()

    @property
    def differs(self) -> bool:
        return len({jsonable(v) for v in self.values.values()}) > 1


@dataclass
class MergePlan:
    entity_type: str
    records: list[Any]
    survivor: Any
    fields: list[MergeField]
    names: dict[uuid.UUID, str]  # owner and company names shown for ids


@dataclass
class UndoPlan:
    merge: Merge
    problems: list[str] = field(default_factory=list)
    done: bool = False


class DuplicateService(ActorService):
    def _model(self, entity_type: str) -> Any:
        if entity_type not in MODELS:
            raise NotFound("No such record type.")
        return MODELS[entity_type]

    # --- the page ------------------------------------------------------------------------------

    def page(
        self, entity_type: str, *, page: int = 1, group: uuid.UUID | None = None, per_page: int | None = None
    ) -> DuplicatesPage:
        """One page of the groups of likely duplicates, best first, with the first RECORDS_SHOWN records
        of each (only the columns shown), and the open proposals (constant statements). `group`: only
        the group holding that record, with all its records. A large organisation's groups come from its
        stored scan (started here the first time, then by "Scan again"); a small one's are scanned in
        the request. A page past the last shows the last."""
        model = self._model(entity_type)
        per_page = per_page or GROUPS_PER_PAGE
        matcher = Matcher(self.session, self.org_id, entity_type)
        scan = self._stored_scan(entity_type)
        if scan is None and self._live_count(model) > _scan_in_request_limit():
            scan = self.start_scan(entity_type)
        if scan is None:
            shown, total, page = _page_of_groups(matcher.scan_rows(), page=page, per_page=per_page, wanted=group)
        else:
            shown, total, page = self._stored_groups(scan, page=page, per_page=per_page, wanted=group)
        cap = MAX_GROUP_SHOWN if group is not None else RECORDS_SHOWN
        for g in shown:
            g.more = max(0, len(g.ids) - cap)
        proposals = [
            Proposal(row.id, row.key, [uuid.UUID(i) for i in row.record_ids], name or "(a former user)", row.created_at)
            for row, name in self.session.execute(
                select(MergeProposal, User.name)
                .outerjoin(User, User.id == MergeProposal.proposed_by_id)
                .where(MergeProposal.org_id == self.org_id, MergeProposal.entity_type == entity_type)
                .order_by(MergeProposal.created_at, MergeProposal.id)
            )
        ]
        ids = {i for g in shown for i in g.ids[:cap]} | {i for p in proposals for i in p.ids}
        records = self._shown_records(entity_type, ids)
        for g in shown:
            g.records = [records[i] for i in g.ids[:cap] if i in records]
        live = []
        for proposal in proposals:
            proposal.records = [records[i] for i in proposal.ids if i in records]
            if len(proposal.records) == len(proposal.ids):  # a record merged or deleted since: not shown
                live.append(proposal)
        proposed = {p.key: p.proposed_by for p in live}
        managing = has_role(self.actor.role, Role.MANAGER)
        if scan is not None:  # records merged or deleted since the scan leave their group
            shown = [g for g in shown if len(g.records) + g.more > 1]
        return DuplicatesPage(
            entity_type,
            shown,
            total,
            matcher.uses_trigrams,
            live if managing else [],
            proposed,
            scan,
            paging=Page(items=shown, total=total, page=page, per_page=per_page),
            group=group,
        )

    def _shown_records(self, entity_type: str, ids: set[uuid.UUID]) -> dict[uuid.UUID, ShownRecord]:
        """The live records of `ids` with only the columns the page shows: one statement."""
        if not ids:
            return {}
        model = self._model(entity_type)
        company = entity_type == "company"
        first, last = (model.name, model.name) if company else (model.first_name, model.last_name)
        website = model.website if entity_type != "contact" else null()
        rows = self.session.execute(
            select(model.id, first, last, model.email, model.phone, website, model.created_at).where(
                model.org_id == self.org_id, model.deleted_at.is_(None), model.id.in_(ids)
            )
        )
        shown = {}
        for row in rows:
            label = row[1] if company else f"{row[1] or ''} {row[2] or ''}".strip()
            shown[row[0]] = ShownRecord(row[0], label, row[3], row[4], row[5], row[6])
        return shown

    def _stored_scan(self, entity_type: str, *, lock: bool = False) -> DuplicateScan | None:
        """`lock`: FOR UPDATE (PostgreSQL), which orders "Not a duplicate" against a scan storing its
        groups (run_scan): each sees what the other committed."""
        stmt = select(DuplicateScan).where(
            DuplicateScan.org_id == self.org_id, DuplicateScan.entity_type == entity_type
        )
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(stmt)

    def _stored_groups(
        self, scan: DuplicateScan, *, page: int, per_page: int, wanted: uuid.UUID | None
    ) -> tuple[list[Group], int, int]:
        """One page of the stored scan's groups, their number and the page shown (clamped): one
        statement, a range of the groups' primary key, whatever the number of groups. The total and the
        page's first position come from the scan's row (its group count less the groups dismissed
        since, whose positions it keeps). `wanted`: the group holding that record, found through
        duplicate_scan_members."""
        groups = (
            select(DuplicateScanGroup.ids, DuplicateScanGroup.score, DuplicateScanGroup.reasons)
            .where(DuplicateScanGroup.org_id == self.org_id, DuplicateScanGroup.entity_type == scan.entity_type)
            .order_by(DuplicateScanGroup.position)
        )
        if wanted is not None:
            # A record is in one group at most: its position as a scalar subquery, then one primary-key
            # lookup, a plan that needs no statistics of these tables (a freshly stored scan has none).
            member = DuplicateScanMember
            holding = (
                select(member.position)
                .where(member.org_id == self.org_id, member.entity_type == scan.entity_type, member.record_id == wanted)
                .limit(1)
                .scalar_subquery()
            )
            rows = self.session.execute(groups.where(DuplicateScanGroup.position == holding)).all()
            total, page = len(rows), 1
        else:
            total = max(0, scan.group_count - len(scan.dismissed or []))
            page = clamp_page(page, total, per_page)
            start = _position_of((page - 1) * per_page, scan.dismissed or [])
            rows = self.session.execute(groups.where(DuplicateScanGroup.position >= start).limit(per_page)).all()
        return [_group_of(row.ids, row.score, row.reasons) for row in rows], total, page

    def _live_count(self, model: Any) -> int:
        live = select(func.count()).select_from(model).where(model.org_id == self.org_id, model.deleted_at.is_(None))
        return self.session.scalar(live) or 0

    def start_scan(self, entity_type: str) -> DuplicateScan:
        """ "Scan again": the stored scan is marked running and a background job recomputes it (any role:
        it only reads). The page keeps showing the previous groups until the job is done."""
        from crm_web.imports import jobs

        self._model(entity_type)
        scan = self._stored_scan(entity_type)
        if scan is None:
            scan = DuplicateScan(org_id=self.org_id, entity_type=entity_type)
            self.session.add(scan)
        scan.status = "running"
        scan.started_at = utcnow()
        commit_or_refuse(self.session)
        jobs.start(run_scan, str(self.org_id), entity_type, job_id=f"duplicate-scan-{self.org_id}-{entity_type}")
        return scan

    def propose(self, entity_type: str, ids: list[uuid.UUID]) -> MergeProposal:
        """ "Propose merge" (any role; what sales users do instead of merging): stored once per group."""
        records = self._records(entity_type, ids, minimum=2)
        key = group_key([r.id for r in records])
        existing = self.session.scalar(
            select(MergeProposal).where(
                MergeProposal.org_id == self.org_id, MergeProposal.entity_type == entity_type, MergeProposal.key == key
            )
        )
        if existing is not None:
            return existing
        proposal = MergeProposal(
            org_id=self.org_id,
            entity_type=entity_type,
            key=key,
            record_ids=key.split(","),
            proposed_by_id=self.actor.user_id,
        )
        self.session.add(proposal)
        commit_or_refuse(self.session)
        return proposal

    def dismiss_proposal(self, entity_type: str, proposal_id: uuid.UUID) -> None:
        """A manager or admin declines a proposal: it is removed (the group itself stays suggested)."""
        require_role(self.actor.role, Role.MANAGER, "dismiss merge proposals")
        self._model(entity_type)
        deleted = self.session.execute(
            delete(MergeProposal).where(
                MergeProposal.org_id == self.org_id,
                MergeProposal.entity_type == entity_type,
                MergeProposal.id == proposal_id,
            )
        )
        if not getattr(deleted, "rowcount", 0):
            self.session.rollback()
            raise NotFound("That proposal does not exist.")
        commit_or_refuse(self.session)

    def candidates(
        self, entity_type: str, values: dict[str, Any], *, exclude_id: uuid.UUID | None = None
    ) -> list[tuple[Any, list[str]]]:
        """Likely duplicates of a record being typed (the forms' warning; any role may see them)."""
        self._model(entity_type)
        return Matcher(self.session, self.org_id, entity_type).candidates(values, exclude_id=exclude_id)

    def dismiss(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        """ "Not a duplicate": every pair of the records is never suggested again (managers, admins). A
        stored scan's group every pair of which is now dismissed leaves the stored groups at once."""
        require_role(self.actor.role, Role.MANAGER, "dismiss duplicates")
        records = self._records(entity_type, ids, minimum=2)
        # Locked before the dismissals are read: a scan storing its groups meanwhile waits, then reads
        # these dismissals; or it stored first, and these rows see its groups.
        scan = self._stored_scan(entity_type, lock=True)
        known = Matcher(self.session, self.org_id, entity_type).dismissed()
        rows = [
            {
                "id": uuid.uuid4(),
                "org_id": self.org_id,
                "entity_type": entity_type,
                "first_id": a,
                "second_id": b,
                "created_by_id": self.actor.user_id,
                "created_at": utcnow(),
            }
            for a, b in (ordered(x.id, y.id) for x, y in combinations(records, 2))
            if (a, b) not in known
        ]
        if rows:
            self.session.execute(insert(DuplicateDismissal), rows)
        if scan is not None:
            pairs = {(str(a), str(b)) for a, b in known} | {(str(r["first_id"]), str(r["second_id"])) for r in rows}
            self._drop_dismissed_groups(scan, [r.id for r in records], pairs)
        commit_or_refuse(self.session)
        return len(rows)

    def _drop_dismissed_groups(self, scan: DuplicateScan, ids: list[uuid.UUID], pairs: set[tuple[str, str]]) -> None:
        """The stored groups holding `ids` (found through duplicate_scan_members) every pair of which is
        in `pairs` are deleted, and their positions kept on the scan, so the page's total and ranges
        stay right. Their members' rows stay until the next scan: they lead to no group."""
        member, stored = DuplicateScanMember, DuplicateScanGroup
        where = (stored.org_id == self.org_id, stored.entity_type == scan.entity_type)
        # Two primary-key lookups (the positions first, as a list): a plan that needs no statistics.
        positions = set(
            self.session.scalars(
                select(member.position).where(
                    member.org_id == self.org_id, member.entity_type == scan.entity_type, member.record_id.in_(ids)
                )
            )
        )
        if not positions:
            return
        candidates = self.session.execute(
            select(stored.position, stored.ids).where(*where, stored.position.in_(sorted(positions)))
        )
        gone = [position for position, group_ids in candidates if not _kept(group_ids, pairs)]
        if not gone:
            return
        self.session.execute(delete(stored).where(*where, stored.position.in_(gone)))
        scan.dismissed = sorted({*(scan.dismissed or []), *gone})

    def _records(self, entity_type: str, ids: list[uuid.UUID], *, minimum: int = 2) -> list[Any]:
        model = self._model(entity_type)
        unique = list(dict.fromkeys(ids))
        if len(unique) < minimum:
            raise ValidationError(f"Choose at least {minimum} records.", {"ids": f"Choose at least {minimum} records."})
        if len(unique) > MAX_MERGED:
            raise ValidationError(f"Choose at most {MAX_MERGED} records.", {"ids": "Too many records."})
        found = {
            r.id: r
            for r in self.session.scalars(select(model).where(model.org_id == self.org_id, model.id.in_(unique)))
        }
        if len(found) != len(unique):
            raise NotFound(f"Some of these {entity_type} records do not exist or were deleted.")
        return [found[i] for i in unique]

    # --- merge ---------------------------------------------------------------------------------

    def plan(self, entity_type: str, ids: list[uuid.UUID], survivor_id: uuid.UUID | None = None) -> MergePlan:
        """The records side by side with the default choice per field: the survivor's value, or the first
        non-empty one."""
        require_role(self.actor.role, Role.MANAGER, "merge records")
        records = self._records(entity_type, ids)
        survivor = next((r for r in records if r.id == survivor_id), records[0])
        others = [r for r in records if r is not survivor]
        fields = []
        for name in MERGE_FIELDS[entity_type]:
            values = {r.id: getattr(r, name) for r in records}
            chosen = survivor.id
            if _empty(values[survivor.id]):
                chosen = next((r.id for r in others if not _empty(values[r.id])), survivor.id)
            fields.append(MergeField(name, values, chosen))
        return MergePlan(entity_type, records, survivor, fields, self._names(records))

    def _names(self, records: list[Any]) -> dict[uuid.UUID, str]:
        """Owner and company names the table shows instead of ids (one statement)."""
        users = {r.owner_id for r in records if r.owner_id}
        companies = {getattr(r, "primary_company_id", None) for r in records} - {None}
        stmt = (
            select(User.id, User.name)
            .where(User.org_id == self.org_id, User.id.in_(users))
            .union_all(select(Company.id, Company.name).where(Company.org_id == self.org_id, Company.id.in_(companies)))
        )
        return {row[0]: row[1] for row in self.session.execute(stmt)}

    def merge(
        self,
        entity_type: str,
        ids: list[uuid.UUID],
        *,
        survivor_id: uuid.UUID,
        choices: dict[str, uuid.UUID] | None = None,
        versions: dict[uuid.UUID, int] | None = None,
    ) -> Merge:
        """Merge `ids` into `survivor_id` in one transaction (see the module's docstring). `choices`: field
        -> the record whose value survives (default as in plan()); `versions`: the versions the form
        showed; a record changed since is a Conflict and nothing is merged."""
        plan = self.plan(entity_type, ids, survivor_id)
        model = self._model(entity_type)
        survivor = plan.survivor
        if survivor.id != survivor_id:
            raise ValidationError("Choose the record that survives among them.", {"survivor": "Not in the group."})
        merged = [r for r in plan.records if r is not survivor]
        for record in plan.records:
            expected = (versions or {}).get(record.id)
            if expected is not None and record.version != expected:
                raise EditConflict(
                    stale_edit(self.session, self.actor, entity_type, entity_type.replace("_", " "), record)
                )
        by_id = {r.id: r for r in plan.records}
        merged_ids = [r.id for r in merged]
        changes: dict[str, Any] = {"fields": {}, "moved": {}, "tags": [], "links": [], "versions": {}}
        # The survivor's fields.
        field_changes: dict[str, list[Any]] = {}
        for item in plan.fields:
            source = (choices or {}).get(item.name, item.chosen)
            if source not in by_id:
                raise ValidationError("Choose a value from the merged records.", {item.name: "Unknown record."})
            value = getattr(by_id[source], item.name)
            before = getattr(survivor, item.name)
            if jsonable(value) != jsonable(before):
                field_changes[item.name] = [jsonable(before), jsonable(value)]
        labels = {r.id: label_of(r) for r in merged}
        # The merged records to the trash first (a unique value chosen from one of them, like an email,
        # is then free for the survivor), refused if a concurrent request changed or deleted any.
        condition = or_(*[and_(model.id == r.id, model.version == r.version) for r in merged])
        trashed = set(
            self.session.scalars(
                update(model)
                .where(model.org_id == self.org_id, model.deleted_at.is_(None), condition)
                .values(deleted_at=utcnow(), deleted_by_id=self.actor.user_id, version=model.version + 1)
                .returning(model.id)
                .execution_options(synchronize_session=False)
            )
        )
        if trashed != set(merged_ids):
            self.session.rollback()
            raise Conflict(
                f"Some of these {entity_type} records were changed by someone else meanwhile. Reload and try again."
            )
        for name, (_before, _after) in field_changes.items():
            setattr(survivor, name, _from_json(model, name, _after))
        # Always an UPDATE of the survivor, guarded by the ORM's version check: a concurrent change is refused.
        survivor.updated_at = utcnow()
        self._move(entity_type, survivor.id, merged_ids, changes)
        changes["fields"] = field_changes
        merge = Merge(
            org_id=self.org_id,
            entity_type=entity_type,
            survivor_id=survivor.id,
            merged_ids=[str(i) for i in merged_ids],
            changes=changes,
            actor_id=self.actor.user_id,
        )
        # A proposal of exactly this group is done with: removed, and kept in the merge for its Undo.
        removed = self.session.execute(
            delete(MergeProposal)
            .where(
                MergeProposal.org_id == self.org_id,
                MergeProposal.entity_type == entity_type,
                MergeProposal.key == group_key([r.id for r in plan.records]),
            )
            .returning(
                MergeProposal.id,
                MergeProposal.key,
                MergeProposal.record_ids,
                MergeProposal.proposed_by_id,
                MergeProposal.created_at,
            )
            .execution_options(synchronize_session=False)
        ).first()
        if removed is not None:
            changes["proposal"] = {
                "id": str(removed.id),
                "key": removed.key,
                "record_ids": list(removed.record_ids),
                "proposed_by_id": jsonable(removed.proposed_by_id),
                "created_at": jsonable(removed.created_at),
            }
        self.session.add(merge)
        self.session.flush()
        names = ", ".join(labels[i] or "(unnamed)" for i in merged_ids)
        record_change(
            self.session,
            self.actor,
            entity_type,
            survivor,
            "merged",
            {**field_changes, "merged_from": names, "merge_id": str(merge.id)},
        )
        record_change(
            self.session,
            self.actor,
            entity_type,
            None,
            "deleted",
            {"merged_into": label_of(survivor), "merge_id": str(merge.id)},
            entity_ids=merged_ids,
            labels=labels,
        )
        self._commit(entity_type)
        return merge

    def _commit(self, entity_type: str) -> None:
        from sqlalchemy.orm.exc import StaleDataError

        try:
            commit_or_refuse(self.session)
        except StaleDataError as error:
            self.session.rollback()
            raise Conflict(
                f"This {entity_type} was changed by someone else meanwhile. Reload and try again."
            ) from error

    def _move(
        self, entity_type: str, survivor_id: uuid.UUID, merged_ids: list[uuid.UUID], changes: dict[str, Any]
    ) -> None:
        """Point every reference to the merged records at the survivor, remembering each row's origin."""
        for name, model, column_name in MOVED[entity_type]:
            column = getattr(model, column_name)
            rows = self.session.execute(
                select(model.id, column)
                .where(model.org_id == self.org_id, column.in_(merged_ids))
                .execution_options(include_deleted=True)
            ).all()
            if rows:
                values: dict[str, Any] = {column_name: survivor_id}
                if hasattr(model, "version"):
                    values["version"] = model.version + 1
                self.session.execute(
                    update(model)
                    .where(model.org_id == self.org_id, model.id.in_([r[0] for r in rows]))
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
            changes["moved"][name] = [[str(r[0]), str(r[1])] for r in rows]
        # Tags united: the survivor gets every tag of the merged records it lacks (theirs stay with them).
        table, column_name = TAG_TABLES[entity_type]
        column = table.c[column_name]
        have = set(self.session.scalars(select(table.c.tag_id).where(column == survivor_id)))
        wanted = set(self.session.scalars(select(table.c.tag_id).where(column.in_(merged_ids)))) - have
        if wanted:
            self.session.execute(
                insert(table), [{column_name: survivor_id, "tag_id": t} for t in sorted(wanted, key=str)]
            )
        changes["tags"] = [str(t) for t in sorted(wanted, key=str)]
        # Contact-company links move with their role, unless the survivor already has that link.
        if entity_type in LINK_SIDES:
            mine, other = LINK_SIDES[entity_type]
            own, far = getattr(ContactCompany, mine), getattr(ContactCompany, other)
            taken = set(
                self.session.scalars(select(far).where(ContactCompany.org_id == self.org_id, own == survivor_id))
            )
            if entity_type == "company":
                taken.add(None)
            moved = []
            for link_id, from_id, far_id in self.session.execute(
                select(ContactCompany.id, own, far)
                .where(ContactCompany.org_id == self.org_id, own.in_(merged_ids))
                .order_by(ContactCompany.created_at, ContactCompany.id)
            ):
                if far_id in taken or (entity_type == "contact" and far_id is None):
                    continue
                taken.add(far_id)
                moved.append([str(link_id), str(from_id)])
            if moved:
                self.session.execute(
                    update(ContactCompany)
                    .where(
                        ContactCompany.org_id == self.org_id, ContactCompany.id.in_([uuid.UUID(m[0]) for m in moved])
                    )
                    .values({mine: survivor_id})
                    .execution_options(synchronize_session=False)
                )
            changes["links"] = moved

    def plan_after(self, merge: Merge) -> dict[str, Any]:
        """The survivor after a merge with what now points at it (names of its contacts, companies,
        deals): three statements."""
        model = self._model(merge.entity_type)
        survivor = self.session.scalar(select(model).where(model.org_id == self.org_id, model.id == merge.survivor_id))
        if survivor is None:
            raise NotFound("The surviving record no longer exists.")
        related: dict[str, list[str]] = {"Deals": [], "Contacts": [], "Companies": []}
        sid = survivor.id
        if merge.entity_type in ("contact", "company"):
            column = Deal.contact_id if merge.entity_type == "contact" else Deal.company_id
            related["Deals"] = list(
                self.session.scalars(
                    select(Deal.name).where(Deal.org_id == self.org_id, column == sid).order_by(Deal.name)
                )
            )
        if merge.entity_type == "company":
            linked = select(ContactCompany.contact_id).where(
                ContactCompany.org_id == self.org_id, ContactCompany.company_id == sid
            )
            related["Contacts"] = [
                f"{first} {last}".strip()
                for first, last in self.session.execute(
                    select(Contact.first_name, Contact.last_name)
                    .where(
                        Contact.org_id == self.org_id, or_(Contact.primary_company_id == sid, Contact.id.in_(linked))
                    )
                    .order_by(Contact.first_name, Contact.last_name)
                )
            ]
        if merge.entity_type == "contact":
            linked_companies = select(ContactCompany.company_id).where(
                ContactCompany.org_id == self.org_id, ContactCompany.contact_id == sid
            )
            related["Companies"] = list(
                self.session.scalars(
                    select(Company.name)
                    .where(
                        Company.org_id == self.org_id,
                        or_(Company.id == survivor.primary_company_id, Company.id.in_(linked_companies)),
                    )
                    .order_by(Company.name)
                )
            )
        return {"record": survivor, "label": label_of(survivor), "related": {k: v for k, v in related.items() if v}}

    def merged_history(self, merge_id: uuid.UUID) -> dict[str, Any]:
        """The history of the records a merge merged into its survivor (the survivor's "merged from ..."
        entry links here): their entries stay on their own ids, so an Undo, which brings the records
        back, keeps them with them. Any role that can read the records (four statements)."""
        from sqlalchemy.orm import joinedload

        from crm_web.models import RecordHistory
        from crm_web.services.history import HISTORY_LIMIT, readable

        merge = self.get_merge(merge_id)
        model = self._model(merge.entity_type)
        ids = [uuid.UUID(i) for i in merge.merged_ids] + [merge.survivor_id]
        records = {
            r.id: r
            for r in self.session.scalars(
                model.select_with_deleted().where(model.org_id == self.org_id, model.id.in_(ids))
            )
        }
        entries = self.session.scalars(
            select(RecordHistory)
            .options(joinedload(RecordHistory.actor))
            .where(
                RecordHistory.org_id == self.org_id,
                RecordHistory.entity_type == merge.entity_type,
                RecordHistory.entity_id.in_(ids[:-1]),
            )
            .order_by(RecordHistory.created_at.desc(), RecordHistory.id.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        items = readable(self.actor, merge.entity_type, entries, session=self.session)
        merged = []
        for ident in ids[:-1]:
            record = records.get(ident)
            merged.append(
                {
                    "id": ident,
                    "label": label_of(record) if record is not None else "(deleted permanently)",
                    "live": record is not None and record.deleted_at is None,
                    "entries": [item for item in items if item.entity_id == ident],
                }
            )
        survivor = records.get(merge.survivor_id)
        return {"merge": merge, "survivor": survivor, "merged": merged}

    # --- undo ----------------------------------------------------------------------------------

    def get_merge(self, merge_id: uuid.UUID) -> Merge:
        merge = self.session.scalar(select(Merge).where(Merge.org_id == self.org_id, Merge.id == merge_id))
        if merge is None:
            raise NotFound("That merge does not exist.")
        return merge

    def undo(self, merge_id: uuid.UUID, *, confirmed: bool = False, dry_run: bool = False) -> UndoPlan:
        """Undo a merge while its merged records are in the trash. What can no longer be restored exactly
        is listed in `problems`; unless `confirmed`, nothing is done then (the page asks first). `dry_run`:
        only the problems."""
        require_role(self.actor.role, Role.MANAGER, "undo a merge")
        merge = self.get_merge(merge_id)
        if merge.undone_at is not None:
            raise Conflict("This merge was already undone.")
        entity_type = merge.entity_type
        model = self._model(entity_type)
        merged_ids = [uuid.UUID(i) for i in merge.merged_ids]
        in_trash = set(
            self.session.scalars(
                model.select_deleted()
                .with_only_columns(model.id)
                .where(model.org_id == self.org_id, model.id.in_(merged_ids))
            )
        )
        if in_trash != set(merged_ids):
            raise Conflict("This merge can no longer be undone: its merged records are no longer in the trash.")
        survivor = self.session.scalar(
            model.select_with_deleted()
            .where(model.org_id == self.org_id, model.id == merge.survivor_id)
            .execution_options(populate_existing=True)
        )
        if survivor is None:
            raise Conflict("This merge can no longer be undone: the surviving record was deleted permanently.")
        problems: list[str] = []
        fields = merge.changes.get("fields", {})
        restorable = {}
        for name, (before, after) in fields.items():
            if jsonable(getattr(survivor, name)) != after:
                what = name.removesuffix("_id").replace("_", " ")
                problems.append(f"The {what} of {label_of(survivor)} was changed since; it keeps its new value.")
            else:
                restorable[name] = _from_json(model, name, before)
        moves: list[tuple[str, Any, str, list[list[str]]]] = []
        for name, rel_model, column_name in MOVED[entity_type]:
            rows = merge.changes.get("moved", {}).get(name, [])
            if not rows:
                continue
            column = getattr(rel_model, column_name)
            still = set(
                self.session.scalars(
                    select(rel_model.id)
                    .where(
                        rel_model.org_id == self.org_id,
                        rel_model.id.in_([uuid.UUID(r[0]) for r in rows]),
                        column == merge.survivor_id,
                    )
                    .execution_options(include_deleted=True)
                )
            )
            lost = [r for r in rows if uuid.UUID(r[0]) not in still]
            if lost:
                problems.append(
                    f"{len(lost)} of the {name} moved by the merge were changed since and stay where they are."
                )
            moves.append((name, rel_model, column_name, [r for r in rows if uuid.UUID(r[0]) in still]))
        if dry_run or (problems and not confirmed):
            return UndoPlan(merge, problems, done=False)
        # Writing: the merged records out of the trash, moved rows back, added tags and links removed.
        self.session.execute(
            update(model)
            .where(model.org_id == self.org_id, model.id.in_(merged_ids))
            .values(deleted_at=None, deleted_by_id=None, version=model.version + 1)
            .execution_options(synchronize_session=False)
        )
        for _name, rel_model, column_name, rows in moves:
            by_origin: dict[str, list[uuid.UUID]] = {}
            for row_id, origin in rows:
                by_origin.setdefault(origin, []).append(uuid.UUID(row_id))
            for origin, row_ids in by_origin.items():
                values: dict[str, Any] = {column_name: uuid.UUID(origin)}
                if hasattr(rel_model, "version"):
                    values["version"] = rel_model.version + 1
                self.session.execute(
                    update(rel_model)
                    .where(rel_model.org_id == self.org_id, rel_model.id.in_(row_ids))
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
        table, column_name = TAG_TABLES[entity_type]
        tags = [uuid.UUID(t) for t in merge.changes.get("tags", [])]
        if tags:
            self.session.execute(
                delete(table).where(table.c[column_name] == merge.survivor_id, table.c.tag_id.in_(tags))
            )
        if entity_type in LINK_SIDES:
            mine, _other = LINK_SIDES[entity_type]
            for link_id, origin in merge.changes.get("links", []):
                self.session.execute(
                    update(ContactCompany)
                    .where(
                        ContactCompany.org_id == self.org_id,
                        ContactCompany.id == uuid.UUID(link_id),
                        getattr(ContactCompany, mine) == merge.survivor_id,
                    )
                    .values({mine: uuid.UUID(origin)})
                    .execution_options(synchronize_session=False)
                )
        self._restore_proposal(merge)
        for name, value in restorable.items():
            setattr(survivor, name, value)
        merge.undone_at = utcnow()
        self.session.flush()
        record_change(
            self.session,
            self.actor,
            entity_type,
            survivor,
            "unmerged",
            {name: [fields[name][1], fields[name][0]] for name in restorable} | {"merge_id": str(merge.id)},
        )
        record_change(
            self.session,
            self.actor,
            entity_type,
            None,
            "restored",
            {"unmerged_from": label_of(survivor)},
            entity_ids=merged_ids,
        )
        self._commit(entity_type)
        return UndoPlan(merge, problems, done=True)

    def _restore_proposal(self, merge: Merge) -> None:
        """The proposal the merge removed, back as it was (same id, proposer and date), unless the group
        was proposed again meanwhile; a proposer deleted since is left out, as deleting them would have."""
        stored = merge.changes.get("proposal")
        if not stored:
            return
        again = self.session.scalar(
            select(MergeProposal.id).where(
                MergeProposal.org_id == self.org_id,
                MergeProposal.entity_type == merge.entity_type,
                MergeProposal.key == stored["key"],
            )
        )
        if again is not None:
            return
        proposer = uuid.UUID(stored["proposed_by_id"]) if stored.get("proposed_by_id") else None
        if proposer is not None:
            proposer = self.session.scalar(select(User.id).where(User.org_id == self.org_id, User.id == proposer))
        self.session.add(
            MergeProposal(
                id=uuid.UUID(stored["id"]),
                org_id=self.org_id,
                entity_type=merge.entity_type,
                key=stored["key"],
                record_ids=list(stored["record_ids"]),
                proposed_by_id=proposer,
                created_at=datetime.fromisoformat(stored["created_at"]),
            )
        )


# --- the stored scan -------------------------------------------------------------------------------


def _scan_in_request_limit() -> int:
    from flask import current_app, has_app_context

    if has_app_context():
        return int(current_app.config.get("DUPLICATE_SCAN_IN_REQUEST", SCAN_IN_REQUEST))
    return SCAN_IN_REQUEST


def _kept(ids: list[str], pairs: set[tuple[str, str]]) -> bool:
    """Whether a group of `ids` (text) still stands: not every pair of it is in `pairs` ((smaller, larger)
    ids as text). A group can only be all dismissed if each of its ids is in a pair: checked first."""
    in_pairs = {i for pair in pairs for i in pair}
    return not (
        all(i in in_pairs for i in ids) and all(((a, b) if a < b else (b, a)) in pairs for a, b in combinations(ids, 2))
    )


def _group_of(ids: list[str], score: Any, reasons: list[str]) -> Group:
    return Group(ids=[uuid.UUID(i) for i in ids], score=int(score), reasons=list(reasons))


def _position_of(rank: int, dismissed: list[int]) -> int:
    """The stored position of the group shown `rank`-th (from 0), once the groups at the `dismissed`
    positions are gone: each of them at or before it moves it one further."""
    position = rank
    for gone in sorted(dismissed):
        if gone > position:
            break
        position += 1
    return position


def _page_of_groups(
    rows: list[dict[str, Any]], *, page: int, per_page: int, wanted: uuid.UUID | None
) -> tuple[list[Group], int, int]:
    """A small organisation's scan in the request: one page of its groups (dismissed pairs left out by
    the scan), how many there are and the page shown (clamped). `wanted`: only the group holding that
    record id. Only the shown groups become Groups."""
    if wanted is not None:
        chosen = [row for row in rows if str(wanted) in row["ids"]][:1]
        total, page = len(chosen), 1
    else:
        total = len(rows)
        page = clamp_page(page, total, per_page)
        chosen = rows[(page - 1) * per_page : page * per_page]
    return [_group_of(row["ids"], row["score"], row["reasons"]) for row in chosen], total, page


def run_scan(org_id: str, entity_type: str) -> None:
    """The background job: scan one entity of one organisation and store the groups as rows, replacing
    the previous scan's in one transaction, so the page shows those until this one is done
    (crm_web/imports/jobs.py runs it: RQ, a thread, or inline)."""
    from crm_web.database import use_long_limits, use_org
    from crm_web.extensions import db

    org = uuid.UUID(org_id)
    session = db.session
    use_org(session(), org)
    use_long_limits(session)
    where = (DuplicateScan.org_id == org, DuplicateScan.entity_type == entity_type)
    matcher = Matcher(session(), org, entity_type)
    try:
        groups = matcher.scan_rows()
        # The scan only read; its transaction ends here (a commit: a rollback would expire the objects
        # of an inline job's request), so storing begins a transaction of its own (SQLite: at a
        # snapshot taken with the write lock, not at the scan's, which another connection's write since
        # would make it refuse).
        session.commit()
        _replace_groups(session, org, entity_type, matcher, groups)
    except Exception:
        session.rollback()
        session.execute(update(DuplicateScan).where(*where).values(status="failed"))
        session.commit()
        raise


def _replace_groups(session: Any, org: uuid.UUID, entity_type: str, matcher: Matcher, groups: list[Any]) -> None:
    """The scan's groups replace the previous ones, in one transaction that begins by locking the scan's
    row with a write (PostgreSQL: that row, which "Not a duplicate" locks too; SQLite: the database).
    The dismissals are then read again: one made while the scan ran is left out here, one made from
    now on waits and sees these groups."""
    where = (DuplicateScan.org_id == org, DuplicateScan.entity_type == entity_type)
    session.execute(
        update(DuplicateScan)
        .where(*where)
        .values(status=DuplicateScan.status)
        .execution_options(synchronize_session=False)
    )
    scan = session.scalar(select(DuplicateScan).where(*where).execution_options(populate_existing=True))
    if scan is None:
        scan = DuplicateScan(org_id=org, entity_type=entity_type)
        session.add(scan)
    for model in (DuplicateScanGroup, DuplicateScanMember):
        session.execute(delete(model).where(model.org_id == org, model.entity_type == entity_type))
    pairs = {(str(a), str(b)) for a, b in matcher.dismissed()}
    if pairs:
        groups = [row for row in groups if _kept(row["ids"], pairs)]
    _store_groups(session(), org, entity_type, groups)
    scan.group_count = len(groups)
    scan.dismissed = []
    scan.status = "done"
    scan.computed_at = utcnow()
    session.commit()


def _store_groups(session: Any, org: uuid.UUID, entity_type: str, groups: list[dict[str, Any]]) -> None:
    """The groups as rows, best first from position 0, and each record's group, in batches of
    STORE_BATCH rows (one statement each)."""
    from crm_web.services.batch_insert import insert_rows

    rows: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    for position, group in enumerate(groups):
        rows.append(
            {
                "org_id": org,
                "entity_type": entity_type,
                "position": position,
                "score": int(group["score"]),
                "ids": list(group["ids"]),
                "reasons": list(group["reasons"]),
            }
        )
        members.extend(
            {"org_id": org, "entity_type": entity_type, "record_id": uuid.UUID(i), "position": position}
            for i in group["ids"]
        )
    for table, batch in ((DuplicateScanGroup.__table__, rows), (DuplicateScanMember.__table__, members)):
        for start in range(0, len(batch), STORE_BATCH):
            insert_rows(session, table, batch[start : start + STORE_BATCH])

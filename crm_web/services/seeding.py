"""Demo and volume data: realistic records written in batches of one statement each (a COPY on
PostgreSQL, services/batch_insert.py), never row-by-row ORM adds.

Built for volume (the benchmark's XL: a million contacts, two million activities): each table is
generated as a stream of batches, never whole in memory; the ids later tables link to are kept as 16
bytes each (`_Ids`), a contact's company as an index. Everything but the ids derives from the seed,
so a seed gives the same records every time.
"""

from __future__ import annotations

import os
import random
import uuid
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from crm_web.extensions import db
from crm_web.models import (
    ACTIVITY_PRIORITIES,
    ACTIVITY_TYPES,
    COMPANY_SIZES,
    LEAD_SOURCES,
    Activity,
    Company,
    Contact,
    ContactCompany,
    Deal,
    Lead,
    Organization,
    Pipeline,
    PipelineStage,
    Tag,
    User,
    company_tags,
    contact_tags,
    deal_tags,
)
from crm_web.services.batch_insert import insert_rows
from crm_web.services.cache_versions import renew_epoch
from crm_web.services.sql import session_or_default

BATCH = 5000
DEAL_KINDS = ["Renewal", "Expansion", "New licence", "Pilot", "Upgrade", "Consulting"]
ACTIVITY_TOPICS = ["intro", "follow up", "demo", "pricing", "contract review", "check-in"]
Progress = Callable[[str, int], None]
# A table's custom field values for one generated row (the row so far; None: no values), drawn from
# the given generator so they follow the seed (bench/run.py passes the benchmark's fields).
CustomValues = Callable[[random.Random, dict[str, Any]], dict[str, Any] | None]
ACTIVITY_STATUSES = ["pending", "pending", "in_progress", "completed", "completed", "cancelled"]
# A table gets this many rows or more in one run: its indexes are built after them (_indexes_built_after),
# with this much memory for the sorts (the server's, for the seeding transaction only).
REBUILD_AT = 50_000
BUILD_MEMORY = "256MB"
NO_ACTIVITY = -(2**31)  # a contact's last activity, in hours from now, when it has none

PIPELINES = [
    (
        "Sales",
        True,
        [
            ("Qualification", 10),
            ("Needs analysis", 25),
            ("Proposal", 50),
            ("Negotiation", 75),
            ("Won", 100, "won"),
            ("Lost", 0, "lost"),
        ],
    ),
    (
        "Partnerships",
        False,
        [("Intro", 10), ("Evaluation", 40), ("Contract", 80), ("Signed", 100, "won"), ("Dropped", 0, "lost")],
    ),
]
TAGS = [
    ("VIP", "#dc2626"),
    ("Hot", "#ea580c"),
    ("Partner", "#2563eb"),
    ("Newsletter", "#16a34a"),
    ("Enterprise", "#7c3aed"),
    ("Follow-up", "#ca8a04"),
]
INDUSTRIES = [
    "Software",
    "Manufacturing",
    "Retail",
    "Healthcare",
    "Finance",
    "Logistics",
    "Education",
    "Media",
    "Energy",
    "Hospitality",
]


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stage_rows(stages: Sequence[PipelineStage]) -> list[tuple[uuid.UUID, int, str | None]]:
    """(id, probability, "won" | "lost" | None) of each stage, in order."""
    return [(s.id, s.probability, "won" if s.is_won else "lost" if s.is_lost else None) for s in stages]


def _random_uuids(count: int) -> bytearray:
    """`count` random version 4 UUIDs as 16 bytes each, like uuid4()'s, from one read of the system's
    random source: the version and variant bits set here once for all, not by each UUID object made
    from them (uuid.UUID's `version` argument costs more than the rest of making one)."""
    data = bytearray(os.urandom(16 * count))
    data[6::16] = bytes(b & 0x0F | 0x40 for b in data[6::16])
    data[8::16] = bytes(b & 0x3F | 0x80 for b in data[8::16])
    return data


def _uuid_of(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=data)


# An id as the rows carry it, from its 16 bytes (Key) or from a uuid.UUID (Seeder.row_id): a UUID for
# SQLite's bind processing; on PostgreSQL its 32 hex digits, which COPY sends as they are and the
# server reads as the uuid, where a UUID object would be made and then formatted again, per cell.
Key = Callable[[bytes], Any]


class _Ids:
    """A table's new ids, 16 bytes each: a million uuid.UUID objects in a list take over 100 MB. Random
    like uuid4() (not from the seed: seeding twice with one seed must not repeat a primary key). Each
    read as `key` makes it."""

    def __init__(self, count: int, key: Key = _uuid_of):
        self.count = count
        self.data = bytes(_random_uuids(count))
        self.key = key

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        return self.key(self.data[16 * index : 16 * index + 16])

    def __iter__(self) -> Iterator[Any]:
        return (self[index] for index in range(self.count))


def _new_ids(key: Key = _uuid_of) -> Iterator[Any]:
    """Random ids for the rows nothing else links to (activities, leads), made a batch at a time."""
    while True:
        data = bytes(_random_uuids(BATCH))
        for start in range(0, len(data), 16):
            yield key(data[start : start + 16])


@contextmanager
def _indexes_built_after(session: Session, table: str, rows: int) -> Iterator[None]:
    """Drop the table's secondary indexes and its foreign keys while a large volume goes in, and build
    them again after: one sorted build costs a fraction of updating every index (four trigram indexes
    on contacts) row by row, and one join per foreign key (ADD CONSTRAINT checks every row) a fraction
    of a referenced-row lookup per row and key (an activity names five records). Only on PostgreSQL
    for the tables' owner, and when the rows written are at least REBUILD_AT and as many as the table
    holds (building an index reads the whole table). Primary keys and unique indexes stay, so every
    check still runs, the foreign keys' once at the end. The DDL is part of the seeding transaction (a
    failure leaves the indexes and keys as they were), and holds the table, and the tables its keys
    reference (organizations, users, ...), locked until its commit: a bulk load for a fresh database,
    not one a server is using."""
    if rows < REBUILD_AT or session.get_bind().dialect.name != "postgresql":
        yield
        return
    owned = session.execute(
        text(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
            "OR pg_has_role(current_user, c.relowner, 'USAGE'), greatest(c.reltuples, 0) "
            "FROM pg_class c WHERE c.oid = CAST(:table AS regclass)"
        ),
        {"table": table},
    ).one()
    if not owned[0] or owned[1] > rows:
        yield
        return
    indexes = session.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:table AS regclass) AND NOT i.indisunique "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid) ORDER BY c.relname"
        ),
        {"table": table},
    ).all()
    # Each key as the catalog states it (ON DELETE, DEFERRABLE, NOT VALID included), under its name.
    keys = session.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:table AS regclass) AND contype = 'f' ORDER BY conname"
        ),
        {"table": table},
    ).all()
    for name, _definition in indexes:
        session.execute(text(f'DROP INDEX "{name}"'))
    for name, _definition in keys:
        session.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
    yield
    # The index builds and the keys' checks (their joins use it as work_mem) sort in this much memory.
    session.execute(text("SELECT set_config('maintenance_work_mem', :memory, true)"), {"memory": BUILD_MEMORY})
    for _name, definition in indexes:
        session.execute(text(definition))
    for name, definition in keys:
        session.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))


class GeneratorMissing(RuntimeError):
    """Faker (the `demo` extra) is not installed: the app runs without it, only the generator needs it."""


def require_generator() -> None:
    """Raise GeneratorMissing before anything is written, rather than halfway through."""
    try:
        import faker  # noqa: F401
    except ImportError:
        raise GeneratorMissing(
            "The demo data generator is not installed: pip install -e '.[demo]' (make run installs it)."
        ) from None


class Seeder:
    """Generates one organisation's data, each table as a stream of batches (`insert_rows`)."""

    def __init__(self, org: Organization, *, seed: int = 42, progress: Progress | None = None):
        require_generator()
        from faker import Faker  # the `demo` extra, imported only here (see require_generator)

        self.org = org
        self.rng = random.Random(seed)
        self.fake = Faker()
        self.fake.seed_instance(seed)
        self.progress = progress or (lambda label, n: None)
        self.now = datetime.now(UTC)
        postgres = db.session.get_bind().dialect.name == "postgresql"
        self.id_key: Key = bytes.hex if postgres else _uuid_of
        # In a stable order (ids are random): the same seed gives each user the same records.
        self.user_ids = list(db.session.scalars(select(User.id).where(User.org_id == org.id).order_by(User.email)))
        self.tag_ids = list(db.session.scalars(select(Tag.id).where(Tag.org_id == org.id).order_by(Tag.name)))
        # Pools of fake values: Faker is slow per call, so draw from pools for bulk volume.
        self.first_names = [self.fake.first_name() for _ in range(400)]
        self.last_names = [self.fake.last_name() for _ in range(600)]
        self.cities = [self.fake.city() for _ in range(200)]
        self.company_words = [self.fake.last_name() for _ in range(800)]

    def row_id(self, value: uuid.UUID) -> Any:
        """An existing record's id as the rows carry it (`Key`)."""
        return self.id_key(value.bytes)

    def _owner(self) -> Any:
        return self.rng.choice(self.user_keys) if self.user_keys else None

    def _insert(self, table: Any, rows: Iterator[dict[str, Any]], label: str, *, expected: int) -> None:
        """Write the rows in batches; `expected` (about how many there are) decides whether the
        table's indexes are built afterwards instead (`_indexes_built_after`)."""
        session = session_or_default(None)
        table = table.__table__ if hasattr(table, "__table__") else table
        with _indexes_built_after(session, table.name, expected):
            for batch in _batches(rows):
                insert_rows(session, table, batch)
                self.progress(label, len(batch))

    def _tag(self, table: Any, key: str, ids: _Ids, counts: list[int], label: str) -> None:
        """Link each record to a random few of the tags (how many: a random pick of `counts`)."""
        if self.tag_ids:
            rng, tags = self.rng, [self.row_id(tag_id) for tag_id in self.tag_ids]
            rows = ({key: rid, "tag_id": tid} for rid in ids for tid in rng.sample(tags, rng.choice(counts)))
            self._insert(table, rows, label, expected=len(ids) * sum(counts) // len(counts))

    def ensure_tags(self) -> None:
        if self.tag_ids:
            return
        for name, color in TAGS:
            tag = Tag(org_id=self.org.id, name=name, color=color)
            db.session.add(tag)
            db.session.flush()
            self.tag_ids.append(tag.id)

    def ensure_pipelines(self) -> list[tuple[uuid.UUID, list[tuple[uuid.UUID, int, str | None]]]]:
        existing = db.session.scalars(
            select(Pipeline).where(Pipeline.org_id == self.org.id).order_by(Pipeline.position, Pipeline.id)
        ).all()
        result: list[tuple[uuid.UUID, list[tuple[uuid.UUID, int, str | None]]]] = []
        if existing:
            for pipeline in existing:
                rows = db.session.scalars(
                    select(PipelineStage)
                    .where(PipelineStage.pipeline_id == pipeline.id)
                    .order_by(PipelineStage.position)
                ).all()
                result.append((pipeline.id, _stage_rows(rows)))
            return result
        for position, (name, is_default, stages) in enumerate(PIPELINES):
            pipeline = Pipeline(org_id=self.org.id, name=name, is_default=is_default, position=position)
            db.session.add(pipeline)
            db.session.flush()
            specs = [(str(spec[0]), int(spec[1]), str(spec[2]) if len(spec) > 2 else None) for spec in stages]
            made = PipelineStage.listed(pipeline, specs)
            db.session.add_all(made)
            db.session.flush()
            result.append((pipeline.id, _stage_rows(made)))
        return result

    def _activity_draws(self, seed: int, activities: int, contacts: int, deals: int) -> Iterator[tuple[Any, ...]]:
        """Each activity's random choices, from their own generator: drawn once to find each contact's
        last activity (stored with the contact, which is written first) and again to write them."""
        rng = random.Random(seed)
        users = len(self.user_ids)
        for _ in range(activities):
            yield (
                rng.choice(ACTIVITY_TYPES)[0],
                rng.randint(-30, 30),  # due: days and hours from now
                rng.randint(0, 8),
                rng.choice(ACTIVITY_STATUSES),
                rng.randrange(contacts) if contacts else -1,
                rng.randrange(deals) if deals and rng.random() < 0.4 else -1,
                rng.randint(1, 20),  # created: days before due
                rng.randrange(users) if users else -1,
                rng.choice(ACTIVITY_PRIORITIES)[0],
                rng.choice(ACTIVITY_TOPICS),
            )

    def _last_activities(self, draws: Iterator[tuple[Any, ...]], contacts: int) -> array[int]:
        """Each new contact's last activity (services/last_activity.py: the latest completion or, if
        not completed, creation), in hours from now: NO_ACTIVITY when it has none. The seeder writes
        it with the contact instead of updating every contact afterwards (at XL a rewrite of the
        whole contacts table and its indexes)."""
        latest = array("i", [NO_ACTIVITY]) * contacts
        for _kind, due_days, due_hours, status, contact, _deal, created_days, *_rest in draws:
            if contact >= 0:
                hours = 24 * due_days + due_hours - (0 if status == "completed" else 24 * created_days)
                if hours > latest[contact]:
                    latest[contact] = hours
        return latest

    def run(
        self,
        *,
        companies: int,
        contacts: int,
        leads: int,
        deals: int,
        activities: int,
        custom: Mapping[str, CustomValues] | None = None,
    ) -> dict[str, int]:
        """Write the volumes; `custom` gives tables ("contacts", "deals", ...) their custom field values."""
        rng, org_id, now = self.rng, self.row_id(self.org.id), self.now
        self.user_keys = [self.row_id(user_id) for user_id in self.user_ids]
        custom = custom or {}
        self.ensure_tags()
        pipelines = [
            (self.row_id(pipeline_id), [(self.row_id(stage_id), *rest) for stage_id, *rest in stages])
            for pipeline_id, stages in self.ensure_pipelines()
        ]
        company_ids, contact_ids, deal_ids = (_Ids(n, self.id_key) for n in (companies, contacts, deals))
        new_ids = _new_ids(self.id_key)
        activity_seed = rng.getrandbits(64)
        last_activity = self._last_activities(
            self._activity_draws(activity_seed, activities, contacts, deals), contacts
        )

        def with_custom(table: str, row: dict[str, Any]) -> dict[str, Any]:
            values = custom.get(table)
            if values is not None:
                row["custom"] = values(rng, row)
            return row

        def company_rows() -> Iterator[dict[str, Any]]:
            for i, cid in enumerate(company_ids):
                word = rng.choice(self.company_words)
                name = f"{word} {rng.choice(['Inc', 'LLC', 'Group', 'Labs', 'Systems', 'GmbH', 'Partners'])}"
                if i >= len(self.company_words):
                    name = f"{name} {i}"
                row = {
                    "id": cid,
                    "org_id": org_id,
                    "owner_id": self._owner(),
                    "name": name,
                    "website": f"https://www.{word.lower()}{i}.example",
                    "industry": rng.choice(INDUSTRIES),
                    "size": rng.choice(COMPANY_SIZES),
                    "employee_count": rng.randint(1, 5000),
                    "annual_revenue": Decimal(rng.randint(1, 500)) * 100000,
                    "phone": f"+1-555-{rng.randint(1000000, 9999999)}",
                    "city": rng.choice(self.cities),
                    "country": rng.choice(["United States", "Germany", "France", "United Kingdom", "Canada"]),
                    "created_at": now - timedelta(days=rng.randint(0, 720)),
                    "updated_at": now,
                    "version": 1,
                }
                yield with_custom("companies", row)

        self._insert(Company, company_rows(), "companies", expected=companies)

        # Each contact's company as an index into company_ids (-1: none): 4 bytes a contact.
        contact_company = array("i", [-1]) * contacts

        def company_of(contact: int) -> Any:
            index = contact_company[contact]
            return company_ids[index] if index >= 0 else None

        def contact_rows() -> Iterator[dict[str, Any]]:
            for i, cid in enumerate(contact_ids):
                first, last = rng.choice(self.first_names), rng.choice(self.last_names)
                if companies and rng.random() < 0.85:
                    contact_company[i] = rng.randrange(companies)
                hours = last_activity[i]
                row: dict[str, Any] = {
                    "id": cid,
                    "org_id": org_id,
                    "owner_id": self._owner(),
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                    "phone": f"+1-555-{rng.randint(1000000, 9999999)}",
                    "title": rng.choice(
                        ["CEO", "CTO", "VP Sales", "Head of Marketing", "Engineer", "Buyer", "Office Manager", "CFO"]
                    ),
                    "status": rng.choice(["lead", "prospect", "customer", "customer", "churned", "inactive"]),
                    "lead_source": rng.choice(LEAD_SOURCES)[0],
                    "city": rng.choice(self.cities),
                    "primary_company_id": company_of(i),
                    "do_not_contact": rng.random() < 0.03,
                    "last_activity_at": now + timedelta(hours=hours) if hours != NO_ACTIVITY else None,
                    "created_at": now - timedelta(days=rng.randint(0, 720)),
                    "updated_at": now,
                    "version": 1,
                }
                yield with_custom("contacts", row)

        self._insert(Contact, contact_rows(), "contacts", expected=contacts)

        def association_rows() -> Iterator[dict[str, Any]]:
            for i, cid in enumerate(contact_ids):
                if companies and rng.random() < 0.1:
                    other = rng.randrange(companies)
                    if other != contact_company[i]:
                        yield {
                            "id": next(new_ids),
                            "org_id": org_id,
                            "contact_id": cid,
                            "company_id": company_ids[other],
                            "role": rng.choice(["Advisor", "Board member", "Consultant", "Investor"]),
                            "created_at": now,
                            "updated_at": now,
                        }

        self._insert(ContactCompany, association_rows(), "contact links", expected=contacts // 10)

        self._tag(contact_tags, "contact_id", contact_ids, [0, 0, 1, 1, 2], "contact tags")
        self._tag(company_tags, "company_id", company_ids, [0, 1], "company tags")

        def lead_rows() -> Iterator[dict[str, Any]]:
            for i in range(leads):
                first, last = rng.choice(self.first_names), rng.choice(self.last_names)
                row = {
                    "id": next(new_ids),
                    "org_id": org_id,
                    "owner_id": self._owner(),
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first.lower()}.{last.lower()}.lead{i}@example.net",
                    "company_name": f"{rng.choice(self.company_words)} {rng.choice(['Co', 'Ltd', 'Studio'])}",
                    "title": rng.choice(["Founder", "Manager", "Director", "Analyst"]),
                    "source": rng.choice(LEAD_SOURCES)[0],
                    "status": rng.choice(["new", "new", "contacted", "qualified", "unqualified"]),
                    "score": rng.randint(0, 100),
                    "estimated_value": Decimal(rng.randint(1, 200)) * 500,
                    "phone": f"+1-555-{rng.randint(1000000, 9999999)}",
                    "created_at": now - timedelta(days=rng.randint(0, 365)),
                    "updated_at": now,
                    "version": 1,
                }
                yield with_custom("leads", row)

        self._insert(Lead, lead_rows(), "leads", expected=leads)

        def deal_rows() -> Iterator[dict[str, Any]]:
            for i, deal_id in enumerate(deal_ids):
                pipeline_id, stages = pipelines[0] if rng.random() < 0.8 or len(pipelines) == 1 else pipelines[1]
                stage_id, _probability, kind = rng.choice(stages)
                contact = rng.randrange(contacts) if contacts else -1
                status = {"won": "won", "lost": "lost"}.get(kind or "", "open")
                created = now - timedelta(days=rng.randint(0, 400))
                closed_at = created + timedelta(days=rng.randint(5, 120)) if status != "open" else None
                if closed_at and closed_at > now:
                    closed_at = now - timedelta(days=rng.randint(0, 30))
                row = {
                    "id": deal_id,
                    "org_id": org_id,
                    "owner_id": self._owner(),
                    "name": f"{rng.choice(DEAL_KINDS)} – {rng.choice(self.company_words)} {i}",
                    "value": Decimal(rng.randint(1, 400)) * 250,
                    "currency": "USD",
                    "probability": None,
                    "status": status,
                    "expected_close_date": (now + timedelta(days=rng.randint(-60, 180))).date(),
                    "closed_at": closed_at,
                    "lost_reason": rng.choice(["Price", "Timing", "Competitor", "No budget"])
                    if status == "lost"
                    else None,
                    "position": float(i),
                    "pipeline_id": pipeline_id,
                    "stage_id": stage_id,
                    "contact_id": contact_ids[contact] if contact >= 0 else None,
                    "company_id": company_of(contact) if contact >= 0 else None,
                    "stage_changed_at": created,
                    "created_at": created,
                    "updated_at": now,
                    "version": 1,
                }
                yield with_custom("deals", row)

        self._insert(Deal, deal_rows(), "deals", expected=deals)
        self._tag(deal_tags, "deal_id", deal_ids, [0, 0, 1], "deal tags")

        labels = dict(ACTIVITY_TYPES)

        def activity_rows() -> Iterator[dict[str, Any]]:
            draws = self._activity_draws(activity_seed, activities, contacts, deals)
            for kind, due_days, due_hours, status, contact, deal, created_days, owner, priority, topic in draws:
                due = now + timedelta(days=due_days, hours=due_hours)
                row = {
                    "id": next(new_ids),
                    "org_id": org_id,
                    "owner_id": self.user_keys[owner] if owner >= 0 else None,
                    "type": kind,
                    "subject": f"{labels[kind]}: {topic}",
                    "status": status,
                    "priority": priority,
                    "due_at": due,
                    "completed_at": due if status == "completed" else None,
                    "contact_id": contact_ids[contact] if contact >= 0 else None,
                    "company_id": company_of(contact) if contact >= 0 else None,
                    "deal_id": deal_ids[deal] if deal >= 0 else None,
                    "created_at": due - timedelta(days=created_days),
                    "updated_at": now,
                    "version": 1,
                }
                yield with_custom("activities", row)

        self._insert(Activity, activity_rows(), "activities", expected=activities)
        session = session_or_default(None)
        if session.get_bind().dialect.name == "postgresql":
            # Statistics for the rows just written, for whatever runs next (autovacuum comes later).
            session.execute(text("ANALYZE companies, contacts, contact_companies, leads, deals, activities"))
        # The rows went in without the ORM, whose hooks would have noticed them: drop the cached numbers.
        renew_epoch(session, self.org.id)
        db.session.commit()
        return {"companies": companies, "contacts": contacts, "leads": leads, "deals": deals, "activities": activities}


DEMO_USERS = [
    ("admin@example.com", "Ada Admin", "admin"),
    ("manager@example.com", "Max Manager", "manager"),
    ("sales@example.com", "Sam Sales", "sales"),
]
DEMO_PASSWORD = "demo"


def ensure_demo_org() -> tuple[Organization, bool]:
    """The demo organisation with its three users; returns (org, created)."""
    org = db.session.scalar(select(Organization).where(Organization.slug == "demo"))
    created = org is None
    if created:
        org = Organization(name="Acme Demo", slug="demo")
        db.session.add(org)
        db.session.flush()
    assert org is not None
    for email, name, role in DEMO_USERS:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            user = User(org_id=org.id, email=email, name=name, role=role)
            user.set_password(DEMO_PASSWORD)
            db.session.add(user)
    db.session.commit()
    return org, created

"""Demo and volume data: realistic records inserted in bulk batches (never row-by-row ORM adds)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, text

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
from crm_web.services.last_activity import refresh_last_activity
from crm_web.services.sql import session_or_default

BATCH = 5000
DEAL_KINDS = ["Renewal", "Expansion", "New licence", "Pilot", "Upgrade", "Consulting"]
ACTIVITY_TOPICS = ["intro", "follow up", "demo", "pricing", "contract review", "check-in"]
Progress = Callable[[str, int], None]

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
    """Generates one organisation's data; every table is written with executemany batches."""

    def __init__(self, org: Organization, *, seed: int = 42, progress: Progress | None = None):
        require_generator()
        from faker import Faker  # the `demo` extra, imported only here (see require_generator)

        self.org = org
        self.rng = random.Random(seed)
        self.fake = Faker()
        self.fake.seed_instance(seed)
        self.progress = progress or (lambda label, n: None)
        self.now = datetime.now(UTC)
        self.user_ids = list(db.session.scalars(select(User.id).where(User.org_id == org.id)))
        self.tag_ids = list(db.session.scalars(select(Tag.id).where(Tag.org_id == org.id)))
        # Pools of fake values: Faker is slow per call, so draw from pools for bulk volume.
        self.first_names = [self.fake.first_name() for _ in range(400)]
        self.last_names = [self.fake.last_name() for _ in range(600)]
        self.cities = [self.fake.city() for _ in range(200)]
        self.company_words = [self.fake.last_name() for _ in range(800)]

    def _owner(self) -> uuid.UUID | None:
        return self.rng.choice(self.user_ids) if self.user_ids else None

    def _insert(self, table: Any, rows: Iterator[dict[str, Any]], label: str) -> None:
        for batch in _batches(rows):
            db.session.execute(insert(table), batch)
            self.progress(label, len(batch))

    def _tag(self, table: Any, key: str, ids: Sequence[uuid.UUID], counts: list[int], label: str) -> None:
        """Link each record to a random few of the tags (how many: a random pick of `counts`)."""
        if self.tag_ids:
            rng = self.rng
            rows = ({key: rid, "tag_id": tid} for rid in ids for tid in rng.sample(self.tag_ids, rng.choice(counts)))
            self._insert(table, rows, label)

    def ensure_tags(self) -> None:
        if self.tag_ids:
            return
        for name, color in TAGS:
            tag = Tag(org_id=self.org.id, name=name, color=color)
            db.session.add(tag)
            db.session.flush()
            self.tag_ids.append(tag.id)

    def ensure_pipelines(self) -> list[tuple[uuid.UUID, list[tuple[uuid.UUID, int, str | None]]]]:
        existing = db.session.scalars(select(Pipeline).where(Pipeline.org_id == self.org.id)).all()
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

    def run(self, *, companies: int, contacts: int, leads: int, deals: int, activities: int) -> dict[str, int]:
        rng, org_id, now = self.rng, self.org.id, self.now
        self.ensure_tags()
        pipelines = self.ensure_pipelines()

        company_ids = [uuid.uuid4() for _ in range(companies)]

        def company_rows() -> Iterator[dict[str, Any]]:
            for i, cid in enumerate(company_ids):
                word = rng.choice(self.company_words)
                name = f"{word} {rng.choice(['Inc', 'LLC', 'Group', 'Labs', 'Systems', 'GmbH', 'Partners'])}"
                if i >= len(self.company_words):
                    name = f"{name} {i}"
                yield {
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

        self._insert(Company, company_rows(), "companies")

        contact_ids = [uuid.uuid4() for _ in range(contacts)]
        contact_company: dict[uuid.UUID, uuid.UUID | None] = {}

        def contact_rows() -> Iterator[dict[str, Any]]:
            for i, cid in enumerate(contact_ids):
                first, last = rng.choice(self.first_names), rng.choice(self.last_names)
                company_id = rng.choice(company_ids) if company_ids and rng.random() < 0.85 else None
                contact_company[cid] = company_id
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
                    "primary_company_id": company_id,
                    "do_not_contact": rng.random() < 0.03,
                }
                _skip_old_last_activity_draws(rng)
                row.update(created_at=now - timedelta(days=rng.randint(0, 720)), updated_at=now, version=1)
                yield row

        self._insert(Contact, contact_rows(), "contacts")

        def association_rows() -> Iterator[dict[str, Any]]:
            for cid in contact_ids:
                if company_ids and rng.random() < 0.1:
                    other = rng.choice(company_ids)
                    if other != contact_company.get(cid):
                        yield {
                            "id": uuid.uuid4(),
                            "org_id": org_id,
                            "contact_id": cid,
                            "company_id": other,
                            "role": rng.choice(["Advisor", "Board member", "Consultant", "Investor"]),
                            "created_at": now,
                            "updated_at": now,
                        }

        self._insert(ContactCompany, association_rows(), "contact links")

        self._tag(contact_tags, "contact_id", contact_ids, [0, 0, 1, 1, 2], "contact tags")
        self._tag(company_tags, "company_id", company_ids, [0, 1], "company tags")

        def lead_rows() -> Iterator[dict[str, Any]]:
            for i in range(leads):
                first, last = rng.choice(self.first_names), rng.choice(self.last_names)
                yield {
                    "id": uuid.uuid4(),
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

        self._insert(Lead, lead_rows(), "leads")

        deal_ids: list[uuid.UUID] = []

        def deal_rows() -> Iterator[dict[str, Any]]:
            for i in range(deals):
                pipeline_id, stages = pipelines[0] if rng.random() < 0.8 or len(pipelines) == 1 else pipelines[1]
                stage_id, _probability, kind = rng.choice(stages)
                contact_id = rng.choice(contact_ids) if contact_ids else None
                company_id = contact_company.get(contact_id) if contact_id else None
                status = {"won": "won", "lost": "lost"}.get(kind or "", "open")
                created = now - timedelta(days=rng.randint(0, 400))
                closed_at = created + timedelta(days=rng.randint(5, 120)) if status != "open" else None
                if closed_at and closed_at > now:
                    closed_at = now - timedelta(days=rng.randint(0, 30))
                deal_id = uuid.uuid4()
                deal_ids.append(deal_id)
                yield {
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
                    "contact_id": contact_id,
                    "company_id": company_id,
                    "stage_changed_at": created,
                    "created_at": created,
                    "updated_at": now,
                    "version": 1,
                }

        self._insert(Deal, deal_rows(), "deals")
        self._tag(deal_tags, "deal_id", deal_ids, [0, 0, 1], "deal tags")

        def activity_rows() -> Iterator[dict[str, Any]]:
            for _ in range(activities):
                kind = rng.choice(ACTIVITY_TYPES)[0]
                due = now + timedelta(days=rng.randint(-30, 30), hours=rng.randint(0, 8))
                status = rng.choice(["pending", "pending", "in_progress", "completed", "completed", "cancelled"])
                contact_id = rng.choice(contact_ids) if contact_ids else None
                yield {
                    "id": uuid.uuid4(),
                    "org_id": org_id,
                    "owner_id": self._owner(),
                    "type": kind,
                    "subject": f"{dict(ACTIVITY_TYPES)[kind]}: {rng.choice(ACTIVITY_TOPICS)}",
                    "status": status,
                    "priority": rng.choice(ACTIVITY_PRIORITIES)[0],
                    "due_at": due,
                    "completed_at": due if status == "completed" else None,
                    "contact_id": contact_id,
                    "company_id": contact_company.get(contact_id) if contact_id else None,
                    "deal_id": rng.choice(deal_ids) if deal_ids and rng.random() < 0.4 else None,
                    "created_at": due - timedelta(days=rng.randint(1, 20)),
                    "updated_at": now,
                    "version": 1,
                }

        self._insert(Activity, activity_rows(), "activities")
        session = session_or_default(None)
        if session.get_bind().dialect.name == "postgresql":
            # Statistics for the rows just inserted in this transaction: without them the planner
            # takes the new activities table for a few pages and reads it whole for every contact.
            session.execute(text("ANALYZE activities, contacts"))
        refresh_last_activity(session, org_id, None)
        db.session.commit()
        return {"companies": companies, "contacts": contacts, "leads": leads, "deals": deals, "activities": activities}


def _skip_old_last_activity_draws(rng: random.Random) -> None:
    """Draw what a contact's random last activity once drew, and drop it: the generated data (and the
    benchmarks and browser tests built on it) stay as they were, while last_activity_at now follows
    the activities (services/last_activity.py)."""
    if rng.random() < 0.7:
        rng.randint(0, 120)


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

"""Small factories for tests: each builds a valid row with sensible defaults and flushes it."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from werkzeug.security import generate_password_hash

from crm_web.extensions import db
from crm_web.models import (
    Activity,
    ApiToken,
    Company,
    Contact,
    Deal,
    Lead,
    Organization,
    Pipeline,
    PipelineStage,
    Tag,
    User,
)
from crm_web.services.base import Actor

_seq = itertools.count(1)


def _save(obj: Any) -> Any:
    db.session.add(obj)
    db.session.commit()
    return obj


# The secret of the internal API token tests make (services/api_tokens.py); only its hash is stored.
INTERNAL_TOKEN = "crm_test-internal-token-of-the-test-suite"
BEARER = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def make_api_token(
    *orgs: Organization,
    all_orgs: bool = False,
    scopes: tuple[str, ...] = ("stats:read", "usage:write"),
    secret: str = INTERNAL_TOKEN,
    name: str = "test",
    **values: Any,
) -> ApiToken:
    """An internal API token for `orgs` (or every organisation) with the secret INTERNAL_TOKEN."""
    from crm_web.services.api_tokens import hash_secret

    token = ApiToken(
        name=name,
        prefix=secret[:12],
        token_hash=hash_secret(secret),
        scopes=list(scopes),
        org_ids=[str(org.id) for org in orgs],
        all_orgs=all_orgs,
        **values,
    )
    return _save(token)


def make_org(slug: str | None = None) -> Organization:
    n = next(_seq)
    slug = f"{slug or 'org'}-{n}"
    return _save(Organization(name=slug.title(), slug=slug))


@functools.cache
def _password_hash(password: str) -> str:
    """One salted hash per password for all the users the tests make: hashing is deliberately slow
    (scrypt), and most tests make several users. Sign-ins still check it the real way."""
    return generate_password_hash(password)


def make_user(
    org: Organization,
    *,
    role: str = "sales",
    email: str | None = None,
    password: str = "secret",
    name: str | None = None,
    active: bool = True,
) -> User:
    n = next(_seq)
    user = User(
        org_id=org.id,
        email=email or f"{role}{n}@{org.slug}.test",
        name=name or f"{role.title()} User {n}",
        role=role,
        active=active,
    )
    user.password_hash = _password_hash(password)
    return _save(user)


def actor_for(user: User) -> Actor:
    return Actor.of(user)


def make_company(org: Organization, **values: Any) -> Company:
    values.setdefault("name", f"Company {next(_seq)}")
    return _save(Company(org_id=org.id, **values))


def make_contact(org: Organization, **values: Any) -> Contact:
    n = next(_seq)
    values.setdefault("first_name", f"First{n}")
    values.setdefault("last_name", f"Last{n}")
    values.setdefault("email", f"contact{n}@example.com")
    return _save(Contact(org_id=org.id, **values))


def make_lead(org: Organization, **values: Any) -> Lead:
    n = next(_seq)
    values.setdefault("first_name", f"Lead{n}")
    values.setdefault("last_name", f"Person{n}")
    values.setdefault("email", f"lead{n}@example.net")
    return _save(Lead(org_id=org.id, **values))


def make_tag(org: Organization, **values: Any) -> Tag:
    values.setdefault("name", f"Tag {next(_seq)}")
    return _save(Tag(org_id=org.id, **values))


DEFAULT_STAGES = [
    ("Lead in", 10, None),
    ("Proposal", 50, None),
    ("Negotiation", 80, None),
    ("Won", 100, "won"),
    ("Lost", 0, "lost"),
]


def make_pipeline(
    org: Organization,
    *,
    name: str | None = None,
    is_default: bool = True,
    stages: list[tuple[str, int, str | None]] | None = None,
) -> Pipeline:
    pipeline = _save(Pipeline(org_id=org.id, name=name or f"Pipeline {next(_seq)}", is_default=is_default))
    for position, (stage_name, probability, kind) in enumerate(stages or DEFAULT_STAGES):
        db.session.add(
            PipelineStage(
                org_id=org.id,
                pipeline_id=pipeline.id,
                name=stage_name,
                position=position,
                probability=probability,
                is_won=kind == "won",
                is_lost=kind == "lost",
            )
        )
    db.session.commit()
    return pipeline


def stages_of(pipeline: Pipeline) -> list[PipelineStage]:
    from sqlalchemy import select

    return list(
        db.session.scalars(
            select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id).order_by(PipelineStage.position)
        )
    )


def make_deal(
    org: Organization, *, pipeline: Pipeline | None = None, stage: PipelineStage | None = None, **values: Any
) -> Deal:
    if pipeline is None and stage is None:
        pipeline = make_pipeline(org, is_default=False)
    if stage is None:
        stage = stages_of(pipeline)[0]
    values.setdefault("name", f"Deal {next(_seq)}")
    values.setdefault("value", Decimal("1000"))
    return _save(Deal(org_id=org.id, pipeline_id=stage.pipeline_id, stage_id=stage.id, **values))


def make_activity(org: Organization, **values: Any) -> Activity:
    values.setdefault("subject", f"Call {next(_seq)}")
    values.setdefault("due_at", datetime.now(UTC) + timedelta(days=1))
    return _save(Activity(org_id=org.id, **values))

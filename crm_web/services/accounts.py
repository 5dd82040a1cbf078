"""Organisations and users: sign-in, and setting up a new customer."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from crm_web.errors import ValidationError
from crm_web.extensions import db
from crm_web.models import Organization, Pipeline, PipelineStage, Role, User, utcnow
from crm_web.passwords import password_problem, spend_a_password_check

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,78}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_TAKEN = "A user with this email already exists (emails are unique across every organisation)."
DEFAULT_PIPELINE_NAME = "Sales"


def normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()


def email_problem(email: str) -> str | None:
    """Why an (already normalised) email cannot be a user's, or None."""
    if not EMAIL_PATTERN.match(email) or len(email) > 254:
        return "Enter a valid email address."
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        return EMAIL_TAKEN
    return None


def authenticate(*, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (same answer, and the same time, for every failure)."""
    user = db.session.scalar(
        select(User).options(joinedload(User.org)).where(func.lower(User.email) == normalise_email(email))
    )
    if user is None or not user.active or not user.has_password:
        spend_a_password_check(password)  # an unknown email must cost what a wrong password costs
        return None
    if not user.check_password(password):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def org_by_slug(slug: str) -> Organization | None:
    return db.session.scalar(select(Organization).where(Organization.slug == slug))


def create_organization(*, name: str, slug: str, currency: str = "USD") -> Organization:
    """A new customer, usable at once: its default pipeline has the usual starter stages (not committed)."""
    from crm_web.services.pipelines import STARTER_STAGES

    org = Organization(name=name, slug=slug, default_currency=currency)
    db.session.add(org)
    db.session.flush()
    pipeline = Pipeline(org_id=org.id, name=DEFAULT_PIPELINE_NAME, is_default=True, currency=currency)
    db.session.add(pipeline)
    db.session.flush()
    db.session.add_all(PipelineStage.listed(pipeline, STARTER_STAGES))
    return org


def create_user(
    *,
    org_slug: str,
    email: str,
    password: str,
    role: str,
    name: str | None = None,
    org_name: str | None = None,
    starter_pipeline: bool = True,
) -> User:
    """Create a user (the command line); creates the organisation too when no org has that slug (a
    new customer), with a default pipeline unless `starter_pipeline` is False (the benchmark's own)."""
    email = normalise_email(email)
    errors: dict[str, str] = {}
    if not SLUG_PATTERN.match(org_slug or ""):
        errors["org"] = "Organisation slug must be lowercase letters, digits and dashes."
    if role not in {r.value for r in Role}:
        errors["role"] = f"Role must be one of: {', '.join(r.value for r in Role)}."
    problem = email_problem(email)
    if problem:
        errors["email"] = problem
    problem = password_problem(password, email=email)
    if problem:
        errors["password"] = f"Password: {problem}"
    if errors:
        raise ValidationError("; ".join(errors.values()), errors)
    org = org_by_slug(org_slug)
    if org is None:
        org_name = org_name or org_slug.replace("-", " ").title()
        if starter_pipeline:
            org = create_organization(name=org_name, slug=org_slug)
        else:
            org = Organization(name=org_name, slug=org_slug)
            db.session.add(org)
            db.session.flush()
    user = User(org_id=org.id, email=email, name=name or email.split("@")[0].title(), role=role)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        raise ValidationError(EMAIL_TAKEN, {"email": EMAIL_TAKEN}) from error
    return user

"""Organisations and users: sign-in, and setting up a new customer."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from crm_web.errors import ValidationError
from crm_web.extensions import db
from crm_web.models import Organization, Role, User, utcnow

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,78}$")


def authenticate(*, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (same answer for every failure)."""
    user = db.session.scalar(
        select(User).options(joinedload(User.org)).where(func.lower(User.email) == email.strip().lower())
    )
    if user is None or not user.active or not user.check_password(password):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def org_by_slug(slug: str) -> Organization | None:
    return db.session.scalar(select(Organization).where(Organization.slug == slug))


def create_user(
    *, org_slug: str, email: str, password: str, role: str, name: str | None = None, org_name: str | None = None
) -> User:
    """Create a user; creates the organisation too when no org has that slug (a new customer)."""
    errors: dict[str, str] = {}
    if not SLUG_PATTERN.match(org_slug or ""):
        errors["org"] = "Organisation slug must be lowercase letters, digits and dashes."
    if role not in {r.value for r in Role}:
        errors["role"] = f"Role must be one of: {', '.join(r.value for r in Role)}."
    if not email or "@" not in email or len(email) > 254:
        errors["email"] = "A valid email address is required."
    if not password or len(password) < 4:
        errors["password"] = "Password must be at least 4 characters."
    if not errors and db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
        errors["email"] = f"A user with email {email} already exists."
    if errors:
        raise ValidationError("; ".join(errors.values()), errors)
    org = org_by_slug(org_slug)
    if org is None:
        org = Organization(name=org_name or org_slug.replace("-", " ").title(), slug=org_slug)
        db.session.add(org)
        db.session.flush()
    user = User(org_id=org.id, email=email.lower(), name=name or email.split("@")[0].title(), role=role)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        raise ValidationError(f"A user with email {email} already exists.", {"email": "Already exists."}) from error
    return user

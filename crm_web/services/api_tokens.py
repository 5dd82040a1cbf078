"""Internal API tokens: who may call which service endpoint, for which organisations.

A token is `crm_` + 43 random URL-safe characters (256 bits), shown once when it is made; the
database keeps its SHA-256 only. Each token lists its scopes (`stats:read`, `usage:write`) and the
organisations it may act for (or, explicitly, all of them). Rotation issues a new token with the
same rights and lets the old one(s) of that name work for an overlap period, so callers can switch
without downtime; revocation ends a token at once. Managed with `flask crm api-token ...`.

Checking a token is one statement: the lookup by hash, which on PostgreSQL also sets the requested
organisation for the transaction (row-level security), the way the user loader does for a page. If
the token turns out not to allow that organisation or endpoint, the transaction is rolled back
before anything else runs.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from crm_web.database import CURRENT_ORG_INFO_KEY, tenant_settings
from crm_web.errors import BadRequest, CRMException, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import ApiToken, Organization, utcnow

SCOPES = ("stats:read", "usage:write")
TOKEN_PREFIX = "crm_"
MAX_SECRET_LENGTH = 200


class Unauthorized(CRMException):
    status_code = 401
    title = "A valid bearer token is required."


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _prefix(secret: str) -> str:
    return secret[:12]


@dataclass(frozen=True)
class IssuedToken:
    """A new token: the secret is shown this once and stored nowhere."""

    token: ApiToken
    secret: str


def _org_ids(slugs: list[str]) -> list[str]:
    rows = db.session.execute(select(Organization.slug, Organization.id).where(Organization.slug.in_(slugs)))
    found = dict(rows.all())
    missing = sorted(set(slugs) - set(found))
    if missing:
        raise NotFound(f"No organisation with slug {', '.join(missing)}.")
    return sorted(str(found[slug]) for slug in slugs)


def _issue(
    *, name: str, scopes: list[str], org_ids: list[str], all_orgs: bool, expires_at: datetime | None, secret: str
) -> IssuedToken:
    token = ApiToken(
        name=name,
        prefix=_prefix(secret),
        token_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        org_ids=org_ids,
        all_orgs=all_orgs,
        expires_at=expires_at,
    )
    db.session.add(token)
    return IssuedToken(token, secret)


def create(
    *,
    name: str,
    scopes: list[str],
    org_slugs: list[str] | None = None,
    all_orgs: bool = False,
    expires_at: datetime | None = None,
    secret: str | None = None,
) -> IssuedToken:
    """A new token. `secret` imports an existing value (the former CRM_INTERNAL_TOKEN) instead of a random one."""
    errors: dict[str, str] = {}
    if not name.strip() or len(name) > 100:
        errors["name"] = "A name of 1 to 100 characters is required."
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        refused = f", not {', '.join(unknown)}" if unknown else ""
        errors["scope"] = f"Scopes must be some of {', '.join(SCOPES)}{refused}."
    if all_orgs == bool(org_slugs):
        errors["org"] = "Name the organisations the token may act for, or choose all organisations explicitly."
    if secret is not None and not 32 <= len(secret) <= MAX_SECRET_LENGTH:
        errors["secret"] = "An imported token must be 32 to 200 characters long."
    if errors:
        raise ValidationError("; ".join(errors.values()), errors)
    issued = _issue(
        name=name.strip(),
        scopes=scopes,
        org_ids=[] if all_orgs else _org_ids(org_slugs or []),
        all_orgs=all_orgs,
        expires_at=expires_at,
        secret=secret or TOKEN_PREFIX + secrets.token_urlsafe(32),
    )
    db.session.commit()
    return issued


def _active(name: str) -> list[ApiToken]:
    now = utcnow()
    tokens = db.session.scalars(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))).all()
    return [t for t in tokens if t.usable(now)]


def rotate(*, name: str, overlap: timedelta) -> IssuedToken:
    """A new token with the rights of the named one; the old ones keep working for `overlap` only."""
    current = _active(name)
    if not current:
        raise NotFound(f"No active token named {name!r}.")
    newest = max(current, key=lambda t: t.created_at)
    ends = utcnow() + overlap
    for token in current:
        if token.expires_at is None or token.expires_at > ends:
            token.expires_at = ends
    issued = _issue(
        name=name,
        scopes=list(newest.scopes),
        org_ids=list(newest.org_ids),
        all_orgs=newest.all_orgs,
        expires_at=None,
        secret=TOKEN_PREFIX + secrets.token_urlsafe(32),
    )
    db.session.commit()
    return issued


def revoke(*, name: str) -> int:
    """End every token of that name now; how many were active."""
    current = _active(name)
    for token in current:
        token.revoked_at = utcnow()
    db.session.commit()
    return len(current)


def listing() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.name, ApiToken.created_at)))


def secret_from_env(variable: str) -> str:
    value = (os.environ.get(variable) or "").strip()
    if not value:
        raise ValidationError(f"{variable} is not set.", {"secret": f"{variable} is not set."})
    return value


# --- checking a request ----------------------------------------------------------------------


def authenticate(*, secret: str, org_id: uuid.UUID | None, scope: str) -> ApiToken:
    """The token for this secret if it may call `scope` for `org_id`; else Unauthorized / PermissionDenied.

    On PostgreSQL the org is set for the transaction in the same statement (row-level security)."""
    session = db.session
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        raise Unauthorized()
    query = select(ApiToken).where(ApiToken.token_hash == hash_secret(secret))
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql and org_id is not None:
        query = query.add_columns(*tenant_settings(str(org_id)))
    row = session.execute(query).first()
    token = row[0] if row is not None else None
    if token is None or not token.usable(utcnow()):
        session.rollback()
        raise Unauthorized()
    if org_id is None:
        session.rollback()
        raise BadRequest("Malformed organisation id.")
    if not token.allows(org_id, scope):
        session.rollback()  # the org set above must not outlive the refusal
        raise PermissionDenied("This token may not do that for this organisation.")
    session.info[CURRENT_ORG_INFO_KEY] = str(org_id)  # later transactions of the request, see database.py
    return token

"""Service-to-service JSON API: organisation stats and usage snapshots.

No login and no CSRF (callers are services, not browsers): every request carries
`Authorization: Bearer <token>`, a token made with `flask crm api-token create` and scoped to this
endpoint and organisation (services/api_tokens.py): 401 without a valid one, 403 outside its
scope. Requests are rate limited per token (INTERNAL_RATE_LIMIT) and failed token checks per
client address (INTERNAL_AUTH_FAILURE_LIMIT). Errors are JSON `{"error": ...}` (crm_web/errors.py).
"""

from __future__ import annotations

import logging
import uuid

from flask import Blueprint, Response, current_app, g, jsonify, request
from limits import parse

from crm_web.auth import public
from crm_web.extensions import csrf, limiter
from crm_web.services import api_tokens, org_stats

logger = logging.getLogger(__name__)

bp = Blueprint("internal", __name__, url_prefix="/internal")
csrf.exempt(bp)

SCOPE_OF_ENDPOINT = {"internal.stats": "stats:read", "internal.usage": "usage:write"}


def _json_error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _failure_limit(address: str, *, record: bool) -> bool:
    """Whether the address may still try a token (and, with `record`, count one more failure).
    A rate-limit store that is down lets requests through: the token is still required."""
    item = parse(current_app.config["INTERNAL_AUTH_FAILURE_LIMIT"])
    try:
        if record:
            return limiter.limiter.hit(item, "internal-auth-failure", address)
        return limiter.limiter.test(item, "internal-auth-failure", address)
    except Exception as error:  # any storage error: fail open, the token check stands
        logger.warning("Internal API failure limit unavailable: %s", error.__class__.__name__)
        return True


def _org_id(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw or "")
    except ValueError:
        return None


@bp.before_request
def _require_token():
    address = request.remote_addr or "unknown"
    if not _failure_limit(address, record=False):
        return _json_error(429, "Too many failed token checks from your address. Wait a minute and try again.")
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    try:
        token = api_tokens.authenticate(
            secret=secret.strip() if scheme.lower() == "bearer" else "",
            org_id=_org_id((request.view_args or {}).get("org_id")),
            scope=SCOPE_OF_ENDPOINT.get(request.endpoint or "", "none"),
        )
    except api_tokens.Unauthorized as error:
        _failure_limit(address, record=True)
        response = _json_error(401, error.message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-internal"'
        return response
    g.internal_token_id = str(token.id)
    return None


def _per_token_limit() -> str:
    return current_app.config["INTERNAL_RATE_LIMIT"]


def _token_key() -> str:
    return g.internal_token_id


@bp.get("/orgs/<org_id>/stats")
@public
@limiter.limit(_per_token_limit, key_func=_token_key)
def stats(org_id: str):
    return jsonify(org_stats.org_stats(org_id=uuid.UUID(org_id)).as_json())


@bp.post("/orgs/<org_id>/usage")
@public
@limiter.limit(_per_token_limit, key_func=_token_key)
def usage(org_id: str):
    return jsonify(org_stats.record_usage(org_id=uuid.UUID(org_id)).as_json()), 201

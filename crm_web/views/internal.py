"""Service-to-service JSON API: organisation stats and usage snapshots.

No login and no CSRF (callers are services, not browsers): every request must carry
`Authorization: Bearer <CRM_INTERNAL_TOKEN>`, compared in constant time. Without a configured
token the endpoints do not exist (404). Errors are JSON `{"error": ...}` (crm_web/errors.py).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, current_app, jsonify, request

from crm_web.auth import public
from crm_web.errors import BadRequest
from crm_web.extensions import csrf
from crm_web.params import parse_uuid
from crm_web.services import org_stats

bp = Blueprint("internal", __name__, url_prefix="/internal")
csrf.exempt(bp)


@bp.before_request
def _require_token():
    expected = current_app.config.get("CRM_INTERNAL_TOKEN")
    if not expected:
        abort(404)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        response = jsonify({"error": "A valid bearer token is required."})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-internal"'
        return response
    return None


def _org_id(raw: str):
    try:
        return parse_uuid(raw, "org_id")
    except BadRequest:
        raise BadRequest("Malformed organisation id.") from None


@bp.get("/orgs/<org_id>/stats")
@public
def stats(org_id: str):
    return jsonify(org_stats.org_stats(org_id=_org_id(org_id)).as_json())


@bp.post("/orgs/<org_id>/usage")
@public
def usage(org_id: str):
    return jsonify(org_stats.record_usage(org_id=_org_id(org_id)).as_json()), 201

"""Health check for load balancers and monitors: asks the database and the cache, within HEALTHZ_TIMEOUT_MS."""

from flask import Blueprint, current_app, jsonify

from crm_web.auth import public
from crm_web.services import system

bp = Blueprint("system", __name__)


@bp.route("/healthz")
@public
def healthz():
    body = system.health(timeout_ms=current_app.config["HEALTHZ_TIMEOUT_MS"])
    body["cache_backend"] = current_app.config["CACHE_TYPE"]
    # A cache outage degrades speed, not service: only the database takes the instance out of rotation.
    return jsonify(body), 503 if body["status"] == "error" else 200

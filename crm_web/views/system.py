"""Health check for load balancers and monitors."""

from flask import Blueprint, current_app, jsonify

from crm_web.auth import public
from crm_web.services import system

bp = Blueprint("system", __name__)


@bp.route("/healthz")
@public
def healthz():
    database_ok = system.database_reachable()
    body = {
        "status": "ok" if database_ok else "error",
        "database": "ok" if database_ok else "unreachable",
        "cache": current_app.config["CACHE_TYPE"],
    }
    return jsonify(body), 200 if database_ok else 503

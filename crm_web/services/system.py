"""Infrastructure checks: each dependency asked for real, within the health check's own budget."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from crm_web.database import apply_timeouts, is_unavailable
from crm_web.extensions import db
from crm_web.services.cache import cache_status

logger = logging.getLogger(__name__)


def database_status(*, timeout_ms: int) -> str:
    """ "ok", "timeout" (it answered too slowly: locked, overloaded) or "unreachable"."""
    try:
        apply_timeouts(db.session, timeout_ms)
        db.session.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as error:
        sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None)
        if not is_unavailable(error):
            raise
        logger.warning("Database health check failed: %s", error.__class__.__name__)
        return "timeout" if sqlstate in ("57014", "55P03") else "unreachable"
    finally:
        try:
            db.session.rollback()  # the short timeouts end with the check's transaction
        except SQLAlchemyError:
            logger.debug("Rollback after the health check failed", exc_info=True)


def health(*, timeout_ms: int) -> dict[str, str]:
    """Each dependency's state; "status" is "ok", "degraded" (no shared cache: pages still work) or "error"."""
    database = database_status(timeout_ms=timeout_ms)
    cache = cache_status()
    if database != "ok":
        status = "error"
    elif cache == "unavailable":
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "database": database, "cache": cache}

"""Infrastructure checks."""

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from crm_web.extensions import db

logger = logging.getLogger(__name__)


def database_reachable() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        logger.exception("Database health check failed")
        db.session.rollback()
        return False

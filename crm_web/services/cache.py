"""The one wrapper for direct cache calls: a Redis outage is a cache miss, never an error page.

Flask-Caching's direct `cache.get/set/delete` raise `redis.exceptions.RedisError` when Redis
is down (only the decorators swallow it). Services call these helpers instead: a failure is
logged once per outage (not once per request) and the caller falls back to the database.
Cache plain data (dataclasses, dicts, tuples of primitives), never ORM instances.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from crm_web.extensions import cache

logger = logging.getLogger(__name__)

_outage_logged = False


def _failed(operation: str, error: Exception) -> None:
    global _outage_logged
    if not _outage_logged:
        _outage_logged = True
        logger.warning("Cache unavailable (%s failed: %s); serving from the database.", operation, error)


def _recovered() -> None:
    global _outage_logged
    if _outage_logged:
        _outage_logged = False
        logger.info("Cache available again.")


def cache_get(key: str) -> Any | None:
    """The cached value, or None on a miss or when the cache is unreachable."""
    try:
        value = cache.get(key)
    except RedisError as error:
        _failed("get", error)
        return None
    _recovered()
    return value


def cache_get_many(*keys: str) -> list[Any | None]:
    """The cached values in one round trip (None for each miss), all None when the cache is unreachable."""
    try:
        values = cache.get_many(*keys)
    except RedisError as error:
        _failed("get", error)
        return [None] * len(keys)
    _recovered()
    return list(values)


def cache_set(key: str, value: Any, timeout: int | None = None) -> None:
    """Store `value` for `timeout` seconds; an unreachable cache is ignored."""
    try:
        cache.set(key, value, timeout=timeout)
    except RedisError as error:
        _failed("set", error)
    else:
        _recovered()


def cache_delete(*keys: str) -> None:
    """Drop keys (invalidation); an unreachable cache is ignored (entries expire by timeout)."""
    if not keys:
        return
    try:
        cache.delete_many(*keys)
    except RedisError as error:
        _failed("delete", error)
    else:
        _recovered()

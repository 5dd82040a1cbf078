"""Direct cache access that never breaks a request: a Redis failure is a cache miss, logged once."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError

from crm_web.extensions import cache

logger = logging.getLogger(__name__)

_warned = False


def _warn_once(error: Exception) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning("Cache unavailable, serving without it: %s", error)


def cache_get(key: str) -> Any:
    """The cached value, or None when absent or when the cache is down."""
    try:
        return cache.get(key)
    except RedisError as error:
        _warn_once(error)
        return None


def cache_set(key: str, value: Any, timeout: int | None = None) -> bool:
    """Store a value; False when the cache is down (the caller carries on uncached)."""
    try:
        return bool(cache.set(key, value, timeout=timeout))
    except RedisError as error:
        _warn_once(error)
        return False


def cache_delete(key: str) -> bool:
    try:
        return bool(cache.delete(key))
    except RedisError as error:
        _warn_once(error)
        return False

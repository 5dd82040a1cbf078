"""The one wrapper for direct cache calls: a Redis outage is a cache miss, never an error page.

Flask-Caching's direct `cache.get/set/delete` raise `redis.exceptions.RedisError` when Redis
is down (only the decorators swallow it). Services call these helpers instead: a failure is
logged once per outage (not once per request) and the caller falls back to the database.
Cache plain data (dataclasses, dicts, tuples of primitives), never ORM instances.

A circuit breaker, per process: a Redis that fails (refuses, or hangs until the socket timeout)
is skipped for CACHE_BREAKER_SECONDS; then one call tries it again, and success closes the
breaker. So a hung Redis costs one socket timeout per process every few seconds, not several per
request. A change whose invalidation cannot be stored changes the organisation's cache epoch in
the database instead (services/cache_versions.py), so it is never hidden by an old entry.

A page that reads several entries asks for them in one round trip (`cache_prefetch`), and an entry a
request reads more than once is fetched once (`cache_get(..., remember=True)`): such reads are
remembered for the rest of the request only (`g`), kept current by the request's own writes of those
keys, and never outside a request (a job, a stream's later reads, the refresh after a response).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import current_app, g, has_app_context, has_request_context
from redis.exceptions import RedisError

from crm_web.extensions import cache

logger = logging.getLogger(__name__)


class _Breaker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open_until = 0.0  # monotonic time before which Redis is skipped
        self.outage_logged = False

    def allows(self) -> bool:
        """Closed: yes. Open: no, until the cool-down ends; then this one caller tries Redis again."""
        if self.open_until == 0.0:
            return True
        with self.lock:
            now = time.monotonic()
            if now < self.open_until:
                return False
            self.open_until = now + _cool_down()  # the others keep skipping while this one probes
            return True

    def is_open(self) -> bool:
        """Whether Redis is being skipped right now (a probe may still be due)."""
        return self.open_until != 0.0

    def failed(self, operation: str, error: Exception) -> None:
        with self.lock:
            self.open_until = time.monotonic() + _cool_down()
            first = not self.outage_logged
            self.outage_logged = True
        if first:
            logger.warning(
                "Cache unavailable (%s failed: %s); serving from the database, retrying every %.0f s.",
                operation,
                error,
                _cool_down(),
            )

    def succeeded(self) -> None:
        if self.open_until == 0.0 and not self.outage_logged:
            return
        with self.lock:
            self.open_until = 0.0
            recovered = self.outage_logged
            self.outage_logged = False
        if recovered:
            logger.info("Cache available again.")

    def reset(self) -> None:
        with self.lock:
            self.open_until = 0.0
            self.outage_logged = False


breaker = _Breaker()


def _cool_down() -> float:
    if has_app_context():
        return float(current_app.config.get("CACHE_BREAKER_SECONDS", 5))
    return 5.0


def _failed(operation: str, error: Exception) -> None:
    """A cache call failed: Redis is away (the breaker counts it), or the cache library itself broke (an
    in-process cache raced by threads): either way a miss for the caller, never an error page, even
    after a commit (the change's invalidation then moves to the database epoch)."""
    if not isinstance(error, RedisError):
        logger.warning("Cache %s failed: %r; treated as a cache miss.", operation, error)
    breaker.failed(operation, error)


# Where a request keeps the values it read with remember=True or prefetched (g).
_READS = "crm_cache_reads"


def _request_reads(*, create: bool = False) -> dict[str, Any] | None:
    if not has_request_context():
        return None
    reads: dict[str, Any] | None = g.get(_READS)
    if reads is None and create:
        reads = {}
        setattr(g, _READS, reads)
    return reads


def cache_get(key: str, *, remember: bool = False) -> Any | None:
    """The cached value, or None on a miss or when the cache is unreachable. Served from the request's
    prefetched or remembered reads when it has the key; `remember`: keep it there for the request."""
    reads = _request_reads(create=remember)
    if reads is not None and key in reads:
        return reads[key]
    if not breaker.allows():
        return None
    try:
        value = cache.get(key)
    except Exception as error:  # RedisError, or any other failure of the cache library
        _failed("get", error)
        return None
    breaker.succeeded()
    if remember and reads is not None:
        reads[key] = value
    return value


def cache_prefetch(*keys: str) -> None:
    """Read `keys` in one round trip for this request: its later cache_get of each is answered from
    what this read found (a miss included). Nothing outside a request."""
    if not keys or not has_request_context():
        return
    reads = _request_reads(create=True)
    assert reads is not None
    wanted = [key for key in keys if key not in reads]
    if wanted and breaker.allows():
        reads.update(zip(wanted, cache_get_many(*wanted), strict=True))


def _wrote(key: str, value: Any = None, *, stored: bool = True) -> None:
    """Keep the request's reads of `key` current after its own write (stored=False: forget it)."""
    reads = _request_reads()
    if reads is None or key not in reads:
        return
    if stored:
        reads[key] = value
    else:
        del reads[key]


def cache_get_many(*keys: str) -> list[Any | None]:
    """The cached values in one round trip (None for each miss), all None when the cache is unreachable."""
    if not breaker.allows():
        return [None] * len(keys)
    try:
        values = cache.get_many(*keys)
    except Exception as error:  # RedisError, or any other failure of the cache library
        _failed("get", error)
        return [None] * len(keys)
    breaker.succeeded()
    return list(values)


def cache_set(key: str, value: Any, timeout: int | None = None) -> bool:
    """Store `value` for `timeout` seconds; False when the cache is unreachable (or skipped by the breaker)."""
    _wrote(key, value)
    if not breaker.allows():
        return False
    try:
        cache.set(key, value, timeout=timeout)
    except Exception as error:
        _failed("set", error)
        return False
    breaker.succeeded()
    return True


def cache_add(key: str, value: Any, timeout: int | None = None) -> bool:
    """Store `value` only if `key` is absent (Redis SET NX; atomic in the in-process cache too): True
    for the one caller that stored it, False for the others and when the cache is unreachable."""
    if not breaker.allows():
        _wrote(key, stored=False)
        return False
    try:
        added = bool(cache.add(key, value, timeout=timeout))
    except Exception as error:
        _failed("add", error)
        _wrote(key, stored=False)
        return False
    breaker.succeeded()
    _wrote(key, value, stored=added)
    return added


def cache_delete(*keys: str) -> None:
    """Drop keys; an unreachable cache is ignored."""
    for key in keys:
        _wrote(key, stored=False)
    if not keys or not breaker.allows():
        return
    try:
        cache.delete_many(*keys)
    except Exception as error:
        _failed("delete", error)
    else:
        breaker.succeeded()


def redis_client() -> Any | None:
    """The shared cache's Redis client (Flask-Caching's), or None for the in-process cache."""
    return getattr(getattr(cache, "cache", None), "_write_client", None)


def channel(client: Any, name: str) -> str:
    """A pub/sub channel of this app's cache: Redis channels are server-wide, not per database, so the
    key prefix and the database number are part of the name (two apps on one Redis never hear each other)."""
    prefix = current_app.config.get("CACHE_KEY_PREFIX") or ""
    return f"{prefix}{client.connection_pool.connection_kwargs.get('db', 0)}:{name}"


def cache_publish(messages: list[tuple[str, str]]) -> None:
    """Publish (channel, message) pairs on the shared cache's Redis in one round trip: what the live
    streams listen to (crm_web/live_stream.py). Nothing to do with the in-process cache; an unreachable
    Redis is ignored like any cache write (pages catch up from their stamps)."""
    client = redis_client()
    if not messages or client is None or not breaker.allows():
        return
    try:
        pipeline = client.pipeline(transaction=False)
        for name, message in messages:
            pipeline.publish(channel(client, name), message)
        pipeline.execute()
    except Exception as error:
        _failed("publish", error)
    else:
        breaker.succeeded()


def cache_status() -> str:
    """Ask the cache itself (the health check): "ok", "unavailable", or "in-process" (no shared cache).

    Always asks, whatever the breaker says, and its answer opens or closes the breaker."""
    client = redis_client()
    if client is None:
        return "in-process"
    try:
        client.ping()
    except RedisError as error:
        breaker.failed("ping", error)
        return "unavailable"
    breaker.succeeded()
    return "ok"

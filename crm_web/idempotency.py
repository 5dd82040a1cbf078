"""Idempotency keys on the create forms: a submit that is sent again (a double click, a retry after
a timeout, a load balancer that lost the response) creates the record once.

Each create form carries a fresh random key (`idempotency_key`, rendered by components/forms.html).
The first POST with a key claims it in the shared cache (Redis: every app node sees it) for its user
and entity; once the record is committed the claim records the record's id for a day. A POST with a
key already used gets the same answer as the first one had (on to the record), one whose first is
still being saved a 409, and a key whose create failed (invalid values, a 503) is released, so the
corrected or retried form saves normally. A POST without a key (an API client, an old page) is not
checked.

Limits: with the cache unreachable nothing is checked (the cache fails open, services/cache.py), and
a process that dies between the commit and recording the id leaves only the short pending claim
(PENDING_SECONDS), after which a retry creates again.
"""

from __future__ import annotations

import logging
import re
import uuid

from crm_web.extensions import cache
from crm_web.services.cache import breaker, cache_delete, cache_get, cache_set

logger = logging.getLogger(__name__)

FIELD = "idempotency_key"
PENDING = "pending"
PENDING_SECONDS = 60
DONE_SECONDS = 86_400
_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_key() -> str:
    return uuid.uuid4().hex


def parse(value: str | None) -> str | None:
    """The submitted key, or None when there is none or it is not one of ours."""
    return value if value and _KEY.match(value) else None


def _cache_key(user_id: object, entity: str, key: str) -> str:
    return f"idem:{user_id}:{entity}:{key}"


def claim(user_id: object, entity: str, key: str) -> str | None:
    """None: the key is new and now claimed. Otherwise PENDING, or the id of the record it created."""
    name = _cache_key(user_id, entity, key)
    if not breaker.allows():
        return None
    try:
        if cache.add(name, PENDING, timeout=PENDING_SECONDS):
            return None
    except Exception as error:  # the cache fails open
        logger.warning("Idempotency key not checked: %s", error.__class__.__name__)
        return None
    return cache_get(name) or None


def remember(user_id: object, entity: str, key: str, record_id: uuid.UUID) -> None:
    cache_set(_cache_key(user_id, entity, key), str(record_id), timeout=DONE_SECONDS)


def release(user_id: object, entity: str, key: str) -> None:
    cache_delete(_cache_key(user_id, entity, key))

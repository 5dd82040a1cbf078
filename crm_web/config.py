"""Settings from the environment; SQLite and an in-process cache by default."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # refused outside development, see create_app


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def database_url_from(url: str) -> str:
    """Accept the common `postgres://` / `postgresql://` spellings and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def cache_settings(redis_url: str | None) -> dict:
    """Redis when configured (shared by every app process), else a per-process cache."""
    if redis_url:
        return {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "crm:",
            # redis-py waits 5 s per call by default: a hung Redis would stall every request.
            "CACHE_OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    return {"CACHE_TYPE": "SimpleCache"}


def settings_from_env() -> dict:
    instance_db = PROJECT_ROOT / "instance" / "crm.sqlite3"
    production = os.environ.get("CRM_ENV", "development") == "production"
    # Production speaks HTTPS: Secure cookies and HSTS, unless a plain-HTTP set-up (a load test on
    # loopback) opts out explicitly. Outside production SESSION_COOKIE_SECURE still turns them on.
    https = _bool("SESSION_COOKIE_SECURE", production and not _bool("CRM_ALLOW_PLAIN_HTTP"))
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url_from(os.environ.get("DATABASE_URL", f"sqlite:///{instance_db}")),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # "transaction" behind PgBouncer in pool_mode = transaction (crm_web/database.py), else "session".
        "DATABASE_POOLING": os.environ.get("DATABASE_POOLING", "session").strip().lower(),
        # A refused or dropped connect to PostgreSQL or its pooler (a PgBouncer restart) is tried again
        # for up to this many seconds before the request answers 503 (crm_web/database.py; 0: never).
        "DATABASE_CONNECT_RETRY_SECONDS": float(os.environ.get("DATABASE_CONNECT_RETRY_SECONDS", "5")),
        # An optional PostgreSQL streaming replica for the read-only pages (crm_web/replica.py), skipped
        # while its replay is more than DATABASE_REPLICA_MAX_LAG_S behind, or for DATABASE_REPLICA_RETRY_S
        # after it could not be reached.
        "DATABASE_REPLICA_URL": database_url_from(os.environ["DATABASE_REPLICA_URL"])
        if os.environ.get("DATABASE_REPLICA_URL")
        else None,
        "DATABASE_REPLICA_MAX_LAG_S": float(os.environ.get("DATABASE_REPLICA_MAX_LAG_S", "5")),
        "DATABASE_REPLICA_RETRY_S": float(os.environ.get("DATABASE_REPLICA_RETRY_S", "5")),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "CRM_ENV": os.environ.get("CRM_ENV", "development"),
        "TRASH_RETENTION_DAYS": int(os.environ.get("TRASH_RETENTION_DAYS", "30")),
        # CSV imports (crm_web/imports/jobs.py): where uploads wait (None: instance/imports) and
        # where jobs run (None: rq with REDIS_URL, else a thread).
        "IMPORT_DIR": os.environ.get("IMPORT_DIR") or None,
        "IMPORT_JOBS": os.environ.get("IMPORT_JOBS") or None,
        # Live pages listen on a server-sent event stream instead of polling (crm_web/live_stream.py):
        # needs REDIS_URL, and a proxy that sends /live/stream to processes made to hold open
        # connections (deploy/). Streams send a heartbeat every LIVE_STREAM_HEARTBEAT seconds and end
        # after LIVE_STREAM_MAX_SECONDS (the browser reconnects; the session is checked again).
        "LIVE_STREAM": os.environ.get("LIVE_STREAM", "").lower() in ("1", "true", "yes", "on"),
        "LIVE_STREAM_HEARTBEAT": float(os.environ.get("LIVE_STREAM_HEARTBEAT", "15")),
        "LIVE_STREAM_MAX_SECONDS": float(os.environ.get("LIVE_STREAM_MAX_SECONDS", "300")),
        # An upload left as a draft (never run) this long is removed with its file: on the next upload
        # of its organisation, and when a worker starts.
        "IMPORT_DRAFT_MAX_AGE_HOURS": float(os.environ.get("IMPORT_DRAFT_MAX_AGE_HOURS", "24")),
        # Live records of an entity above which the Duplicates page reads a stored scan a background
        # job computes (the import's jobs), instead of scanning in its request.
        "DUPLICATE_SCAN_IN_REQUEST": int(os.environ.get("DUPLICATE_SCAN_IN_REQUEST", "500")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": https,
        # Strict-Transport-Security max-age in seconds (0: no header); sent only with Secure cookies.
        "HSTS_SECONDS": _int("HSTS_SECONDS", 31_536_000) if https else 0,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "PIPELINE_CACHE_TIMEOUT": 300,
        # services/pagination.py: a list counts its total exactly up to this many rows, then says "more
        # than"; pages are numbered (?page=N) while they start within it, deeper ones are read by cursor.
        "LIST_COUNT_BOUND": _int("LIST_COUNT_BOUND", 10_000),
        # The same for a list filtered on a custom field, whose count reads each counted row's table block.
        "LIST_CUSTOM_COUNT_BOUND": _int("LIST_CUSTOM_COUNT_BOUND", 1_000),
        # The same for a searched list (its pages are numbered up to it: past it, narrow the search).
        "LIST_SEARCH_COUNT_BOUND": _int("LIST_SEARCH_COUNT_BOUND", 1_000),
        # services/stats/cache.py: "overdue" moves with the clock; deal numbers only with writes.
        "ACTIVITY_STATS_CACHE_TIMEOUT": 60,
        "DEAL_STATS_CACHE_TIMEOUT": 3600,
        # A dashboard statistic read in this last share of its timeout is recomputed after that viewer's
        # response, so the next viewers find it fresh instead of one of them waiting for it.
        "STATS_REFRESH_AHEAD": float(os.environ.get("STATS_REFRESH_AHEAD", "0.25")),
        # services/cache.py: after a Redis failure, skip Redis for this many seconds (per process).
        "CACHE_BREAKER_SECONDS": float(os.environ.get("CACHE_BREAKER_SECONDS", "5")),
        # crm_web/database.py: PostgreSQL limits set per transaction (milliseconds; 0 = none). A request
        # that hits one answers 503 with Retry-After instead of holding its worker.
        "DB_STATEMENT_TIMEOUT_MS": _int("DB_STATEMENT_TIMEOUT_MS", 10_000),
        "DB_LOCK_TIMEOUT_MS": _int("DB_LOCK_TIMEOUT_MS", 3_000),
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": _int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 30_000),
        # Long work (CSV exports, later imports): a statement may run, and the transaction may wait for a
        # slow client between batches, this long.
        "DB_LONG_STATEMENT_TIMEOUT_MS": _int("DB_LONG_STATEMENT_TIMEOUT_MS", 120_000),
        "DB_LONG_IDLE_IN_TRANSACTION_TIMEOUT_MS": _int("DB_LONG_IDLE_IN_TRANSACTION_TIMEOUT_MS", 300_000),
        # /healthz asks each dependency with this budget (milliseconds).
        "HEALTHZ_TIMEOUT_MS": _int("HEALTHZ_TIMEOUT_MS", 1_000),
        # Seconds a 503 (database restarting, a timeout fired) tells the client to wait.
        "RETRY_AFTER_SECONDS": _int("RETRY_AFTER_SECONDS", 5),
        "RATELIMIT_STORAGE_URI": os.environ.get("REDIS_URL") or "memory://",
        # A Redis outage must not lock everyone out of signing in.
        "RATELIMIT_SWALLOW_ERRORS": True,
        # ... nor make each sign-in wait out redis-py's default 5 s timeouts when Redis hangs.
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        "RATELIMIT_HEADERS_ENABLED": True,
        # ... and keep limiting while Redis is away: each process counts in memory until it returns.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # Failed sign-ins only (views/auth.py), per address and per account; the stacked windows are
        # the backoff: a minute's pause after a burst, then an hour, then a day.
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "20 per minute; 100 per hour"),
        "LOGIN_ACCOUNT_RATE_LIMIT": os.environ.get("LOGIN_ACCOUNT_RATE_LIMIT", "5 per minute; 20 per hour; 50 per day"),
        # Proxies in front of the app whose X-Forwarded-For/-Proto to trust (0: none, the peer is the client).
        "TRUSTED_PROXY_HOPS": _int("TRUSTED_PROXY_HOPS", 0),
        # auth.py: a session ends after this long, or this long unused; "keep me signed in" lasts REMEMBER_DAYS.
        "SESSION_MAX_AGE_HOURS": _int("SESSION_MAX_AGE_HOURS", 12),
        "SESSION_IDLE_MINUTES": _int("SESSION_IDLE_MINUTES", 120),
        "REMEMBER_COOKIE_DURATION": timedelta(days=_int("REMEMBER_DAYS", 30)),
        # services/users.py: invitation and password reset links.
        "PASSWORD_LINK_DAYS": 7,
        # The internal API: requests per token, and failed token checks per client address.
        "INTERNAL_RATE_LIMIT": os.environ.get("INTERNAL_RATE_LIMIT", "120 per minute"),
        "INTERNAL_AUTH_FAILURE_LIMIT": os.environ.get("INTERNAL_AUTH_FAILURE_LIMIT", "20 per minute"),
    }

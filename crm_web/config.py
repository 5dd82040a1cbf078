"""Settings from the environment; SQLite and an in-process cache by default."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # refused outside development, see create_app


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


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
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url_from(os.environ.get("DATABASE_URL", f"sqlite:///{instance_db}")),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "CRM_INTERNAL_TOKEN": os.environ.get("CRM_INTERNAL_TOKEN") or None,
        "CRM_ENV": os.environ.get("CRM_ENV", "development"),
        "TRASH_RETENTION_DAYS": int(os.environ.get("TRASH_RETENTION_DAYS", "30")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE"),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE"),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "PIPELINE_CACHE_TIMEOUT": 300,
        # services/stats/cache.py: "overdue" moves with the clock; deal numbers only with writes.
        "ACTIVITY_STATS_CACHE_TIMEOUT": 60,
        "DEAL_STATS_CACHE_TIMEOUT": 3600,
        "RATELIMIT_STORAGE_URI": os.environ.get("REDIS_URL") or "memory://",
        # A Redis outage must not lock everyone out of signing in.
        "RATELIMIT_SWALLOW_ERRORS": True,
        # ... nor make each sign-in wait out redis-py's default 5 s timeouts when Redis hangs.
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": os.environ.get("LOGIN_RATE_LIMIT", "10 per minute"),
    }

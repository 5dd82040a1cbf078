"""crm-web: a fast, server-rendered CRM. `create_app` builds the Flask application."""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from flask import Flask

from crm_web.config import DEV_SECRET_KEY, PROJECT_ROOT, cache_settings, settings_from_env

__all__ = ["create_app", "freeze_startup_objects"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, overridden by `config` (tests use it)."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    settings = settings_from_env()
    settings.update(config or {})
    if "CACHE_TYPE" not in settings:
        settings.update(cache_settings(settings.get("REDIS_URL")))
    app.config.update(settings)
    _refuse_dev_secret_in_production(app)
    os.makedirs(app.instance_path, exist_ok=True)  # the default SQLite file lives there
    _configure_logging()
    _warn_about_retired_settings()

    from crm_web.database import ReplayCutReads

    app.wsgi_app = ReplayCutReads(app.wsgi_app)  # type: ignore[method-assign]
    _trust_proxies(app)
    _init_extensions(app)
    _register_blueprints(app)

    from crm_web.views.live import IdleChecks

    app.wsgi_app = IdleChecks(app, app.wsgi_app)  # type: ignore[method-assign]
    _serve_live_streams(app)

    from crm_web import htmx, rendering, security
    from crm_web.cli import register_cli
    from crm_web.errors import register_error_handlers

    htmx.init_app(app)
    security.init_app(app)
    rendering.init_app(app)
    register_error_handlers(app)
    register_cli(app)
    return app


# A serving process's request counts after which it freezes again what it has built since start-up
# (see freeze_startup_objects). Doubling, not quadrupling: a page first requested late in a process's
# life (each of several workers sees only its share of the requests) leaves what it built unfrozen
# only until the next count, so the full collections until then scan less.
REFREEZE_AFTER_REQUESTS = (25, 50, 100, 200, 400, 800, 1600, 3200)

# While a serving process answers a request, the collector waits for this many new container objects
# (instead of 700) before it runs: a page's objects are alive until its response is built, so a
# collection inside the request scans them all for almost nothing, while after the response their
# refcounts have freed them and the collection is cheap. A request that builds more (a big bulk
# action) is still collected inside it.
REQUEST_GC_THRESHOLD = 100_000


def freeze_startup_objects(app: Flask | None = None) -> None:
    """Move everything built so far out of the cyclic garbage collector's reach, for a serving process.

    Modules, mappers, compiled templates and the app live as long as the process; without this every
    full collection re-scans them, during whichever request triggers it (often the board, which
    builds many objects): docs/design.md, "Serving". With `app`, the process also collects its
    garbage between requests instead of during them (collect_between_requests). Not for tests,
    which build many short-lived apps.
    """
    gc.collect()
    gc.freeze()
    if app is not None:
        collect_between_requests(app)


def collect_between_requests(app: Flask) -> None:
    """Hold the collector back while a request runs and collect once its response has been sent:
    the young generations after every response, everything after every tenth (the collector's own
    ratio). Templates are compiled, and SQL statements cached, on the requests that first use them,
    after start-up: after its REFREEZE_AFTER_REQUESTS-th requests the process freezes again. A
    streamed response (an export, a stream) may run for minutes: the collector is back to normal
    before its body is produced."""
    from flask import Response, request_started

    served = 0
    checkpoints = set(REFREEZE_AFTER_REQUESTS)
    normal = gc.get_threshold()

    def hold(sender: Flask, **extra: Any) -> None:
        gc.set_threshold(REQUEST_GC_THRESHOLD, *normal[1:])

    def collect(full: bool, freeze: bool) -> None:
        gc.set_threshold(*normal)
        if freeze:
            freeze_startup_objects()
        else:
            gc.collect(2 if full else 1)

    request_started.connect(hold, app, weak=False)

    @app.after_request
    def _collect_after_the_response(response: Response) -> Response:
        nonlocal served
        served += 1
        if response.is_streamed:
            gc.set_threshold(*normal)
        full, freeze = served % normal[1] == 0, served in checkpoints
        response.call_on_close(lambda: collect(full, freeze))
        return response


def _configure_logging() -> None:
    """Warnings and errors of every library, and the app's own messages from INFO up.

    Not INFO for everything: libraries (Alembic's plugins, for one) announce their set-up at INFO, which
    buried every CLI command's own output. Request lines come from the server: werkzeug's in
    development, gunicorn's access log in production. Left alone when logging is already set up (a
    server's configuration, pytest's capture)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).setLevel(logging.INFO)


def _refuse_dev_secret_in_production(app: Flask) -> None:
    if app.config["CRM_ENV"] == "production" and app.config["SECRET_KEY"] in (DEV_SECRET_KEY, "", None):
        raise RuntimeError("SECRET_KEY must be set to a random value when CRM_ENV=production.")


def _warn_about_retired_settings() -> None:
    if os.environ.get("CRM_INTERNAL_TOKEN"):
        logging.getLogger(__name__).warning(
            "CRM_INTERNAL_TOKEN is no longer read. Import it once as a scoped token, e.g. `flask --app wsgi crm "
            "api-token create --name legacy --from-env CRM_INTERNAL_TOKEN --scope stats:read --scope usage:write "
            "--all-orgs`, then unset it (README, Internal API)."
        )


def _serve_live_streams(app: Flask) -> None:
    """LIVE_STREAM: pages listen on /live/stream (crm_web/live_stream.py), which needs Redis to hear changes."""
    if not app.config.get("LIVE_STREAM"):
        return
    if not app.config.get("REDIS_URL"):
        logging.getLogger(__name__).warning("LIVE_STREAM needs REDIS_URL; live pages poll instead.")
        app.config["LIVE_STREAM"] = False
        return
    from crm_web.live_stream import LiveStreams

    app.wsgi_app = LiveStreams(app, app.wsgi_app)  # type: ignore[method-assign]


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXY_HOPS proxies, the client address (sign-in limits) and scheme come from
    their X-Forwarded-For/-Proto; with none, those headers are ignored (anyone can send them)."""
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def _init_extensions(app: Flask) -> None:
    from crm_web import database, replica
    from crm_web.extensions import cache, csrf, db, limiter, login_manager, migrate

    database.prepare_settings(app.config)
    db.init_app(app)
    with app.app_context():
        database.configure_engine(
            db.engine, connect_retry_s=float(app.config.get("DATABASE_CONNECT_RETRY_SECONDS") or 0)
        )
    database.end_sessions_quietly(app)
    database.refuse_privileged_role_in_production(app)
    replica.init_app(app, db)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    cache.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    from crm_web import auth
    from crm_web.services import cache_versions  # noqa: F401 - its session hooks keep cached values current

    auth.init_login(login_manager)
    auth.require_login_everywhere(app)


def _register_blueprints(app: Flask) -> None:
    from crm_web.views import BLUEPRINTS

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

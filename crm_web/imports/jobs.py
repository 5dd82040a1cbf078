"""Where an import runs: outside the web request.

- With REDIS_URL set (production), on an RQ queue on the app's Redis, run by `flask --app wsgi crm
  worker` (README, production section);
- without it (the embedded default, `make run`), in a background thread of the app;
- IMPORT_JOBS="inline" runs it in the caller (the tests, the command line).

The job itself is `run_import`: the same code path everywhere (ImportService.run). Other long jobs
(a large organisation's duplicate scan) run the same ways through `start`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, current_app

from crm_web.extensions import db

logger = logging.getLogger(__name__)

QUEUE = "crm-imports"
JOB_TIMEOUT = 2 * 60 * 60  # seconds: the largest file, with room


def mode(app: Flask) -> str:
    configured = app.config.get("IMPORT_JOBS")
    if configured:
        return str(configured)
    return "rq" if app.config.get("REDIS_URL") else "thread"


def queue(app: Flask) -> Any:
    from redis import Redis
    from rq import Queue

    return Queue(QUEUE, connection=Redis.from_url(app.config["REDIS_URL"]))


def enqueue(import_id: uuid.UUID, *, org_id: uuid.UUID, user_id: uuid.UUID | None) -> None:
    """Start the import's run where this app runs its jobs."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    args = (str(import_id), str(org_id), str(user_id) if user_id else None)
    how = mode(app)
    if how == "inline":
        run_import(*args)
    elif how == "rq":
        queue(app).enqueue(run_import, *args, job_timeout=JOB_TIMEOUT, job_id=f"import-{import_id}")
    else:
        threading.Thread(target=_in_thread, args=(app, *args), name=f"import-{import_id}", daemon=True).start()


def start(job: Callable[..., None], *args: str, job_id: str) -> None:
    """Run `job(*args)` (a module-level function, its arguments strings) where this app runs its jobs."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    how = mode(app)
    if how == "inline":
        job(*args)
    elif how == "rq":
        queue(app).enqueue(job, *args, job_timeout=JOB_TIMEOUT, job_id=job_id)
    else:
        threading.Thread(target=_call_in_thread, args=(app, job, *args), name=job_id, daemon=True).start()


def _call_in_thread(app: Flask, job: Callable[..., None], *args: Any) -> None:
    with app.app_context():
        try:
            job(*args)
        except Exception:  # the job records its failure; the thread must not die loudly
            logger.exception("Job %s%s failed", job.__name__, args)
        finally:
            db.session.remove()


def _in_thread(app: Flask, *args: Any) -> None:
    with app.app_context():
        try:
            run_import(*args)
        except Exception:  # the import is marked failed by the run; the thread must not die loudly
            logger.exception("Import %s failed", args[0])
        finally:
            db.session.remove()


def run_import(import_id: str, org_id: str, user_id: str | None) -> None:
    """The job: run one pending import as the user who started it (in an app context)."""
    from crm_web.database import use_long_limits, use_org
    from crm_web.imports.service import ImportService
    from crm_web.models import Role, User
    from crm_web.services.base import Actor

    org = uuid.UUID(org_id)
    use_org(db.session(), org)
    use_long_limits(db.session)
    user = db.session.get(User, uuid.UUID(user_id)) if user_id else None
    if user is not None and user.org_id != org:
        user = None
    actor = Actor(
        org_id=org,
        user_id=user.id if user else None,
        role=Role(user.role) if user else Role.ADMIN,
        name=user.name if user else "import",
    )
    service = ImportService(actor)
    service.recover_stale()  # an earlier run of this organisation whose worker died
    service.run(uuid.UUID(import_id))


def recover_stale_everywhere() -> int:
    """At a worker's start: the imports of every organisation its role can see that a dead worker left
    running are failed and cleaned up (ImportService.recover_stale). Returns how many."""
    from sqlalchemy import select

    from crm_web.imports.service import STALE_AFTER, ImportService
    from crm_web.models import Import, Role, utcnow
    from crm_web.services.base import Actor

    cutoff = utcnow() - STALE_AFTER
    orgs = set(db.session.scalars(select(Import.org_id).where(Import.status == "running", Import.updated_at < cutoff)))
    found = 0
    for org in orgs:
        found += len(ImportService(Actor(org_id=org, user_id=None, role=Role.ADMIN)).recover_stale())
    return found


def remove_abandoned_drafts_everywhere(max_age: timedelta) -> int:
    """At a worker's start: the drafts of every organisation its role can see that nobody touched for
    `max_age` are removed with their uploaded files (ImportService.remove_abandoned_drafts)."""
    from sqlalchemy import select

    from crm_web.imports.service import ImportService
    from crm_web.models import Import, Role, utcnow
    from crm_web.services.base import Actor

    cutoff = utcnow() - max_age
    orgs = set(db.session.scalars(select(Import.org_id).where(Import.status == "draft", Import.updated_at < cutoff)))
    return sum(
        ImportService(Actor(org_id=org, user_id=None, role=Role.ADMIN)).remove_abandoned_drafts(max_age) for org in orgs
    )


def draft_max_age(app: Flask) -> timedelta:
    """How long an uploaded file may wait as a draft (IMPORT_DRAFT_MAX_AGE_HOURS) before it is removed."""
    return timedelta(hours=float(app.config.get("IMPORT_DRAFT_MAX_AGE_HOURS", 24)))


def work(app: Flask, *, burst: bool = False) -> None:
    """Process import jobs from the app's Redis until stopped (`flask crm worker`)."""
    from rq import SimpleWorker

    recovered = recover_stale_everywhere()
    if recovered:
        logger.warning("Failed %d imports whose worker had died", recovered)
    removed = remove_abandoned_drafts_everywhere(draft_max_age(app))
    if removed:
        logger.info("Removed %d abandoned import drafts", removed)
    # SimpleWorker: jobs run in this process, in the app context the command pushed (no fork, so no
    # database connection is shared with a child).
    worker = SimpleWorker([queue(app)], connection=queue(app).connection)
    worker.work(burst=burst)

"""CSV import in the browser: upload, map the columns, preview with the dry run, run with a live
progress bar, the history with Undo import. The work is ImportService's; the run is a job
(crm_web/imports/jobs.py), so no request waits for a file to import."""

from __future__ import annotations

import os
import uuid

from flask import Blueprint, Response, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user

from crm_web.errors import BadRequest, CRMException, ValidationError
from crm_web.htmx import hx_location, wants_fragment
from crm_web.imports import jobs
from crm_web.imports.fields import BY_PLURAL
from crm_web.imports.reading import MAX_BYTES, UnreadableFile, check_size
from crm_web.imports.service import ON_DUPLICATE, ImportService, Options, _errors_path_for, run_progress
from crm_web.rendering import render_page
from crm_web.views.generic import acting

bp = Blueprint("imports", __name__)

# A multipart body is the file plus a few fields: refuse a request larger than this before reading it.
MAX_REQUEST = MAX_BYTES + 64 * 1024


class FileTooLarge(CRMException):
    status_code = 413
    title = "File too large"


def _service() -> ImportService:
    service = acting(ImportService)
    service.require_import()
    return service


def _upload_dir() -> str:
    path = current_app.config.get("IMPORT_DIR") or os.path.join(current_app.instance_path, "imports")
    os.makedirs(path, exist_ok=True)
    return path


@bp.get("/import")
def index():
    _service()
    return render_page("imports/index.html", entities=BY_PLURAL, max_mb=MAX_BYTES // 1024 // 1024)


@bp.post("/import")
def upload():
    service = _service()
    if (request.content_length or 0) > MAX_REQUEST:
        raise FileTooLarge(f"The file is larger than {MAX_BYTES // 1024 // 1024} MB: split it and import each part.")
    entity = request.form.get("entity", "")
    if entity not in BY_PLURAL:
        raise BadRequest("Choose what the file holds: contacts, companies, leads, deals or activities.")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Choose a CSV file to upload.", {"file": "Choose a file."})
    service.remove_abandoned_drafts(jobs.draft_max_age(current_app))  # uploads nobody went on with
    path = os.path.join(_upload_dir(), f"{uuid.uuid4().hex}.csv")
    upload.save(path)
    try:
        check_size(os.path.getsize(path))
        job = service.upload(path, entity, file_name=upload.filename, owned_file=True)
    except UnreadableFile as error:
        os.remove(path)
        raise ValidationError(str(error), {"file": str(error)}) from None
    return redirect(url_for("imports.mapping", import_id=job.id), 303)


@bp.get("/import/<uuid:import_id>")
def mapping(import_id):
    job = _service().get(import_id)
    if job.status != "draft":
        return redirect(url_for("imports.progress", import_id=job.id), 303)
    return render_page(
        "imports/mapping.html", job=job, spec=_service().spec(job.entity), outcome=None, policies=ON_DUPLICATE
    )


@bp.post("/import/<uuid:import_id>")
def configure(import_id):
    """Save the mapping and policy, then preview (the dry run) or run."""
    service = _service()
    job = service.draft(import_id)
    header = job.mapping.get("header") or []
    columns = [request.form.get(f"column-{i}", "") for i in range(len(header))]
    on_duplicate = request.form.get("on_duplicate", "skip")
    if on_duplicate not in ON_DUPLICATE:
        raise BadRequest("Unknown duplicates policy.")
    options = Options(on_duplicate=on_duplicate, create_companies=bool(request.form.get("create_companies")))
    job = service.configure(import_id, mapping=columns, options=options)
    if request.form.get("action") == "run":
        job = service.start(import_id)
        jobs.enqueue(job.id, org_id=job.org_id, user_id=current_user.id)
        return redirect(url_for("imports.progress", import_id=job.id), 303)
    outcome = service.preview(import_id)
    return render_page(
        "imports/mapping.html", job=job, spec=_service().spec(job.entity), outcome=outcome, policies=ON_DUPLICATE
    )


@bp.get("/import/<uuid:import_id>/errors.csv")
def errors(import_id):
    job = _service().get(import_id)
    path = (job.options or {}).get("errors_path") or _errors_path_for(job.file_path or "")
    if not path or not os.path.exists(path):
        abort(404)
    stem = os.path.splitext(job.file_name)[0].replace('"', "")

    def chunks():
        with open(path, "rb") as f:  # closed when the body ends
            while chunk := f.read(64 * 1024):
                yield chunk

    response = Response(chunks(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{stem}-errors.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/import/<uuid:import_id>/progress")
def progress(import_id):
    job = _service().get(import_id)
    rate, left = run_progress(job)
    return render_page(
        "imports/progress.html",
        block="import_progress",
        job=job,
        rate=rate,
        left=left,
        spec=_service().spec(job.entity),
    )


@bp.get("/import/history")
def history():
    return render_page("imports/history.html", imports=_service().history(), specs=BY_PLURAL)


@bp.post("/import/<uuid:import_id>/undo")
def undo(import_id):
    trashed = _service().undo(import_id)
    flash(f"Import undone: {sum(trashed.values())} records moved to the trash.", "info")
    if wants_fragment():
        return hx_location(url_for("imports.history"))
    return redirect(url_for("imports.history"), 303)

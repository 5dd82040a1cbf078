"""The import pages: upload, mapping, preview, run, progress, history, Undo import; who may import."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_web.extensions import db
from crm_web.models import Contact, Import
from tests import factories

DATA = Path(__file__).parent / "data" / "import"
HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _inline_jobs(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_JOBS", "inline")
    monkeypatch.setitem(app.config, "IMPORT_DIR", str(tmp_path))


def upload(client, name="contacts_cp1252_semicolon.csv", entity="contacts"):
    data = {"entity": entity, "file": (io.BytesIO((DATA / name).read_bytes()), name)}
    return client.post("/import", data=data, content_type="multipart/form-data")


def the_import(org):
    db.session.expire_all()  # the requests changed it in their own sessions
    return db.session.scalar(select(Import).where(Import.org_id == org.id).order_by(Import.created_at.desc()))


def live_contacts(org):
    return db.session.scalar(
        select(func.count()).select_from(Contact).where(Contact.org_id == org.id, Contact.deleted_at.is_(None))
    )


def test_a_manager_uploads_maps_previews_runs_and_undoes(client, login, org):
    login("manager")
    assert client.get("/import").status_code == 200
    response = upload(client)
    assert response.status_code == 303
    job = the_import(org)
    page = client.get(f"/import/{job.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="first_name" selected' in html and 'value="company" selected' in html
    form = {"column-0": "first_name", "column-1": "last_name", "column-2": "email", "column-3": "company"}
    form.update({"column-4": "status", "on_duplicate": "skip", "create_companies": "1", "action": "preview"})
    preview = client.post(f"/import/{job.id}", data=form)
    assert preview.status_code == 200
    text = preview.get_data(as_text=True)
    assert "Will create <strong>3</strong>" in text and "José" in text and live_contacts(org) == 0
    ran = client.post(f"/import/{job.id}", data={**form, "action": "run"})
    assert ran.status_code == 303 and ran.headers["Location"].endswith(f"/import/{job.id}/progress")
    assert not Path(job.file_path).exists()  # the upload is gone once imported
    progress = client.get(f"/import/{job.id}/progress")
    assert "100 %" in progress.get_data(as_text=True) and live_contacts(org) == 3
    fragment = client.get(f"/import/{job.id}/progress", headers=HX).get_data(as_text=True)
    assert 'id="import-progress"' in fragment and "<html" not in fragment
    listed = client.get(f"/contacts?f=import.equals.{job.id}").get_data(as_text=True)
    assert "José" in listed
    history = client.get("/import/history").get_data(as_text=True)
    assert "contacts_cp1252_semicolon.csv" in history and "Undo import" in history
    assert client.post(f"/import/{job.id}/undo").status_code == 303
    assert live_contacts(org) == 0 and the_import(org).status == "undone"


def test_the_preview_offers_the_error_rows_as_csv(client, login, org):
    login("admin")
    upload(client, "invalid_values.csv")
    job = the_import(org)
    header = job.mapping["header"]
    form = {f"column-{i}": c for i, c in enumerate(job.mapping["columns"])} | {"action": "preview"}
    assert len(form) == len(header) + 1
    text = client.post(f"/import/{job.id}", data=form).get_data(as_text=True)
    assert "errors <strong>8</strong>" in text
    download = client.get(f"/import/{job.id}/errors.csv")
    assert download.status_code == 200 and download.get_data(as_text=True).splitlines()[0].endswith(",error")
    assert "&lt;b&gt;Bold&lt;/b&gt;" in text and "<b>Bold</b>" not in text


def test_an_unreadable_file_is_refused_with_its_reason(client, login, org):
    login("manager")
    response = upload(client, "binary.csv")
    assert response.status_code == 422 and "not a text file" in response.get_data(as_text=True)
    assert the_import(org) is None


def test_a_file_over_the_limit_is_refused_before_it_is_read(client, login, monkeypatch):
    import sys

    # The module (crm_web.views exports its blueprint under the same name).
    monkeypatch.setattr(sys.modules["crm_web.views.imports"], "MAX_REQUEST", 100)
    login("manager")
    response = upload(client)
    assert response.status_code == 413 and "larger than" in response.get_data(as_text=True)


def test_sales_users_import_only_when_the_org_allows_it(client, login, org):
    login("sales")
    assert client.get("/import").status_code == 403
    assert upload(client).status_code == 403
    org.sales_can_import = True
    db.session.commit()
    assert client.get("/import").status_code == 200


def test_another_orgs_import_is_not_found(client, login, other_org, users):
    other_admin = factories.make_user(other_org, role="admin")
    login(other_admin)
    upload(client)
    job = the_import(other_org)
    login("admin")
    for url in (f"/import/{job.id}", f"/import/{job.id}/progress", f"/import/{job.id}/errors.csv"):
        assert client.get(url).status_code == 404
    assert client.post(f"/import/{job.id}/undo").status_code == 404


def test_history_costs_the_same_for_one_or_many_imports(client, login, org, count_queries):
    login("admin")
    upload(client)
    with count_queries() as one:
        assert client.get("/import/history").status_code == 200
    for _ in range(4):
        upload(client)
    with count_queries() as many:
        assert client.get("/import/history").status_code == 200
    assert one.count == many.count <= 4


def test_an_admin_lets_sales_users_import(client, login, org):
    login("admin")
    form = {"name": org.name, "default_currency": "USD", "time_zone": "UTC", "sales_can_import": "y"}
    assert client.post("/settings/organisation", data=form).status_code == 303
    db.session.expire_all()
    assert db.session.get(type(org), org.id).sales_can_import is True
    login("sales")
    assert client.get("/import").status_code == 200


def test_jobs_go_to_the_redis_queue_when_there_is_redis(app, redis_url, monkeypatch, org, users):
    from redis import Redis
    from rq import Queue

    from crm_web.imports import jobs

    monkeypatch.setitem(app.config, "IMPORT_JOBS", None)
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    assert jobs.mode(app) == "thread"
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    assert jobs.mode(app) == "rq"
    queue = Queue(jobs.QUEUE, connection=Redis.from_url(redis_url))
    queue.empty()
    try:
        import uuid

        import_id = uuid.uuid4()
        jobs.enqueue(import_id, org_id=org.id, user_id=users["admin"].id)
        assert queue.count == 1
        job = queue.jobs[0]
        assert job.func_name == "crm_web.imports.jobs.run_import"
        assert job.args == (str(import_id), str(org.id), str(users["admin"].id))
    finally:
        queue.empty()


def test_history_refreshes_itself_while_an_import_runs(client, login, org, users):
    login("manager")
    db.session.add(
        Import(
            org_id=org.id,
            created_by_id=users["admin"].id,
            entity="contact",
            file_name="big.csv",
            mapping={},
            options={},
            status="running",
            total_rows=200,
            rows_done=50,
        )
    )
    db.session.commit()
    html = client.get("/import/history").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html and "running (25 %)" in html

"""Pipeline settings over HTTP, and the pipeline cache shared by two app instances on one Redis."""

from __future__ import annotations

import uuid

import pytest

from crm_web import create_app
from crm_web.extensions import db
from crm_web.models import Pipeline
from crm_web.services.pipelines import PipelineService
from tests import factories
from tests.conftest import HX, LOGIN_STATEMENTS, base_config


@pytest.fixture
def pipeline(org):
    return factories.make_pipeline(org)


def test_settings_page_and_roles(client, login, org, pipeline, count_queries):
    stage = factories.stages_of(pipeline)[1]
    factories.make_deal(org, stage=stage, value=1500)
    login("manager")
    response = client.get("/pipelines")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and pipeline.name in html and "1 deal · $1,500 open" in html
    with count_queries() as q:
        client.get("/pipelines")
    assert q.count == LOGIN_STATEMENTS, q  # the pipelines and their stage counts from the cache
    login("sales")
    assert client.get("/pipelines").status_code == 403
    assert client.get("/pipelines/new").status_code == 403
    assert client.get(f"/pipelines/{pipeline.id}/edit").status_code == 403


def test_pipeline_list_warm_from_cache_costs_no_pipeline_query(app, users, org, pipeline, count_queries):
    service = PipelineService(factories.actor_for(users["manager"]))
    service.pipeline_list()
    with count_queries() as q:
        service.pipeline_list()
        service.board_pipeline()
    assert q.count == 0


def test_create_pipeline_and_stage_forms(client, login, org):
    login("manager")
    response = client.post("/pipelines/new", data={"name": "Partners", "currency": "EUR", "is_default": "y"})
    assert response.status_code == 303
    created = db.session.query(Pipeline).filter_by(org_id=org.id, name="Partners").one()
    assert created.is_default
    response = client.post("/pipelines/new", data={"name": "", "currency": "EUR"})
    assert response.status_code == 422 and "field-error" in response.get_data(as_text=True)
    # a second won stage: the database refuses, the form shows it on the won checkbox
    response = client.post(
        f"/pipelines/{created.id}/stages/new", data={"name": "Won 2", "probability": "100", "is_won": "y"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "This pipeline already has a won stage." in html
    assert (
        'id="field-is_won"' in html.split("This pipeline already has a won stage.")[0].rsplit('<div class="field', 1)[1]
        or "has-error" in html
    )
    response = client.post(
        f"/pipelines/{created.id}/stages/new", data={"name": "Both", "probability": "5", "is_won": "y", "is_lost": "y"}
    )
    assert response.status_code == 422
    response = client.post(f"/pipelines/{created.id}/stages/new", data={"name": "Demo", "probability": "40"})
    assert response.status_code == 303
    assert "Demo" in [
        s.name
        for s in PipelineService(factories.actor_for(db.session.get(type(created), created.id) and _manager(org)))
        .pipeline_get(created.id)
        .stages
    ]


def _manager(org):
    from crm_web.models import User

    return db.session.query(User).filter_by(org_id=org.id, role="manager").one()


def test_edit_stage_probability_error(client, login, pipeline):
    login("manager")
    stage = factories.stages_of(pipeline)[0]
    response = client.post(f"/pipelines/stages/{stage.id}/edit", data={"name": "X", "probability": "150"})
    assert response.status_code == 422 and "has-error" in response.get_data(as_text=True)
    response = client.post(f"/pipelines/stages/{stage.id}/edit", data={"name": "Inbound", "probability": "15"})
    assert response.status_code == 303


def test_set_default_htmx(client, login, org, pipeline):
    login("manager")
    other = factories.make_pipeline(org, is_default=False, name="Second")
    response = client.post(f"/pipelines/{other.id}/default", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="pipeline-list"' in html and "<html" not in html
    assert "is now the default pipeline" in html
    assert client.post(f"/pipelines/{other.id}/default", csrf=False).status_code == 400
    assert client.post(f"/pipelines/{uuid.uuid4()}/default").status_code == 404


def test_reorder_stages(client, login, pipeline):
    login("manager")
    stages = factories.stages_of(pipeline)
    order = [s.id for s in reversed(stages)]
    response = client.post(
        f"/pipelines/{pipeline.id}/stages/reorder", data={"stage_id": [str(i) for i in order]}, headers=HX
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.index(str(order[0])) < html.index(str(order[-1]))
    response = client.post(f"/pipelines/{pipeline.id}/stages/reorder", data={"stage_id": ["junk"]}, headers=HX)
    assert response.status_code == 400


def test_delete_stage_asks_where_to_move_deals(client, login, org, pipeline):
    login("manager")
    stages = factories.stages_of(pipeline)
    factories.make_deal(org, stage=stages[0])
    page = client.get(f"/pipelines/stages/{stages[0].id}/delete").get_data(as_text=True)
    assert "Move its deals to" in page and "holds <strong>1</strong> deal" in page
    response = client.post(f"/pipelines/stages/{stages[0].id}/delete", data={"move_to_stage_id": ""})
    assert response.status_code == 422 and "Choose where to move them" in response.get_data(as_text=True)
    response = client.post(f"/pipelines/stages/{stages[0].id}/delete", data={"move_to_stage_id": str(stages[1].id)})
    assert response.status_code == 303


def test_delete_pipeline_refused_with_deals(client, login, org, pipeline):
    login("manager")
    doomed = factories.make_pipeline(org, is_default=False, name="Doomed")
    factories.make_deal(org, stage=factories.stages_of(doomed)[0])
    response = client.post(f"/pipelines/{doomed.id}/delete", data={"move_to_stage_id": ""})
    assert response.status_code == 422
    target = factories.stages_of(pipeline)[0]
    response = client.post(f"/pipelines/{doomed.id}/delete", data={"move_to_stage_id": str(target.id)})
    assert response.status_code == 303
    assert db.session.query(Pipeline.id).filter_by(id=doomed.id).first() is None


# --- two app instances, one Redis ----------------------------------------------------------


def test_two_apps_share_the_pipeline_cache(tmp_path, redis_url):
    """A change made through one app process is seen at once through the other."""
    from flask_migrate import upgrade

    from tests.conftest import MIGRATIONS

    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    prefix = f"crm-test-{uuid.uuid4().hex[:8]}:"
    config = {
        **base_config(database),
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": prefix,
    }
    first, second = create_app(config), create_app(config)
    with first.app_context():
        upgrade(directory=MIGRATIONS)
        org = factories.make_org("shared")
        manager = factories.actor_for(factories.make_user(org, role="manager"))
        pipeline = factories.make_pipeline(org, name="Original")
        db.session.remove()
    try:
        with second.app_context():
            assert [p.name for p in PipelineService(manager).pipeline_list()] == ["Original"]  # cached by #2
            assert PipelineService(manager).pipeline_get(pipeline.id).name == "Original"
            db.session.remove()
        with first.app_context():
            PipelineService(manager).pipeline_update(pipeline.id, name="Renamed")
            PipelineService(manager).stage_create(pipeline.id, name="Extra", probability=5)
            db.session.remove()
        with second.app_context():
            service = PipelineService(manager)
            assert [p.name for p in service.pipeline_list()] == ["Renamed"]
            assert "Extra" in [s.name for s in service.pipeline_get(pipeline.id).stages]
            db.session.remove()
    finally:
        with first.app_context():
            from crm_web.extensions import cache

            cache.clear()
            db.session.remove()
            db.engine.dispose()
        with second.app_context():
            db.engine.dispose()


def test_redis_down_is_a_cache_miss(tmp_path):
    database = f"sqlite:///{tmp_path / 'down.sqlite3'}"
    config = {
        **base_config(database),
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": "redis://127.0.0.1:1/0",
        "CACHE_KEY_PREFIX": "crm-down:",
        "CACHE_OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
    import logging

    from flask_migrate import upgrade

    from crm_web.services import cache as cache_module
    from tests.conftest import MIGRATIONS

    app = create_app(config)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    cache_module.breaker.reset()  # a fresh process: no outage seen yet
    with app.app_context():
        upgrade(directory=MIGRATIONS)  # (alembic's logging set-up replaces pytest's handlers)
        cache_module.logger.addHandler(handler)
        org = factories.make_org("down")
        manager = factories.actor_for(factories.make_user(org, role="manager"))
        pipeline = factories.make_pipeline(org, name="Still works")
        service = PipelineService(manager)
        assert [p.name for p in service.pipeline_list()] == ["Still works"]
        service.pipeline_update(pipeline.id, name="Renamed anyway")
        assert service.pipeline_get(pipeline.id).name == "Renamed anyway"
        db.session.remove()
        db.engine.dispose()
    cache_module.logger.removeHandler(handler)
    cache_module.breaker.reset()
    assert len([r for r in records if r.levelname == "WARNING"]) == 1  # logged once, not per call

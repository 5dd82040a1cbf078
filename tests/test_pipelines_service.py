"""Pipeline settings service: constraints as field errors, default pipeline, stage/pipeline deletion, cache."""

from __future__ import annotations

import uuid

import pytest

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.models import Deal, Pipeline
from crm_web.services.pipelines import PipelineService
from tests import factories


@pytest.fixture
def manager(users):
    return factories.actor_for(users["manager"])


@pytest.fixture
def service(manager):
    return PipelineService(manager)


def test_create_pipeline_with_starter_stages(service):
    pipeline = service.pipeline_create(name="  Enterprise ")
    info = service.pipeline_get(pipeline.id)
    assert info.name == "Enterprise"
    assert [s.name for s in info.stages] == ["New", "Qualified", "Proposal", "Won", "Lost"]
    assert info.won_stage.name == "Won" and info.lost_stage.name == "Lost"


def test_sales_cannot_change_pipelines(users, org):
    sales = PipelineService(factories.actor_for(users["sales"]))
    with pytest.raises(PermissionDenied):
        sales.pipeline_create(name="Mine")
    pipeline = factories.make_pipeline(org)
    with pytest.raises(PermissionDenied):
        sales.stage_create(pipeline.id, name="X")
    with pytest.raises(PermissionDenied):
        sales.settings()


def test_set_default_demotes_previous_in_one_transaction(service, org):
    first = factories.make_pipeline(org, is_default=True)
    second = factories.make_pipeline(org, is_default=False)
    service.pipeline_set_default(second.id)
    defaults = [p.id for p in service.pipeline_list() if p.is_default]
    assert defaults == [second.id]
    # and back again, and a new pipeline created as the default
    service.pipeline_set_default(first.id)
    third = service.pipeline_create(name="Third", is_default=True)
    assert [p.id for p in service.pipeline_list() if p.is_default] == [third.id]


def test_second_won_stage_is_a_field_error(service, org):
    pipeline = factories.make_pipeline(org)
    with pytest.raises(ValidationError) as error:
        service.stage_create(pipeline.id, name="Won again", probability=100, is_won=True)
    assert "is_won" in error.value.field_errors
    with pytest.raises(ValidationError) as error:
        service.stage_create(pipeline.id, name="Lost again", is_lost=True)
    assert "is_lost" in error.value.field_errors


def test_stage_both_won_and_lost_and_probability_range(service, org):
    pipeline = factories.make_pipeline(org, stages=[("Open", 10, None)])
    with pytest.raises(ValidationError) as error:
        service.stage_create(pipeline.id, name="Both", is_won=True, is_lost=True)
    assert "is_lost" in error.value.field_errors
    with pytest.raises(ValidationError) as error:
        service.stage_create(pipeline.id, name="Too high", probability=101)
    assert "probability" in error.value.field_errors
    stage = factories.stages_of(pipeline)[0]
    with pytest.raises(ValidationError) as error:
        service.stage_update(stage.id, name="Open", probability=-1, is_won=False, is_lost=False)
    assert "probability" in error.value.field_errors


def test_stage_update_and_reorder(service, org):
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    service.stage_update(stages[0].id, name="Inbound", probability=15, is_won=False, is_lost=False)
    new_order = [stages[2].id, stages[0].id, stages[1].id, stages[3].id, stages[4].id]
    service.stage_reorder(pipeline.id, new_order)
    info = service.pipeline_get(pipeline.id)
    assert [s.id for s in info.stages] == new_order
    assert info.stage(stages[0].id).name == "Inbound" and info.stage(stages[0].id).probability == 15
    with pytest.raises(ValidationError):
        service.stage_reorder(pipeline.id, new_order[:-1])


def test_delete_stage_with_deals_asks_where_to_move_them(service, org):
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    deal = factories.make_deal(org, stage=stages[1])
    with pytest.raises(ValidationError) as error:
        service.stage_delete(stages[1].id)
    assert "move_to_stage_id" in error.value.field_errors
    other = factories.make_pipeline(org, is_default=False)
    with pytest.raises(ValidationError):
        service.stage_delete(stages[1].id, move_to_stage_id=factories.stages_of(other)[0].id)
    service.stage_delete(stages[1].id, move_to_stage_id=stages[3].id)  # into Won
    refreshed = service.session.get(Deal, deal.id, populate_existing=True)
    assert refreshed.stage_id == stages[3].id
    assert refreshed.status == "won" and refreshed.closed_at is not None
    assert stages[1].id not in [s.id for s in service.pipeline_get(pipeline.id).stages]


def test_delete_empty_stage(service, org):
    pipeline = factories.make_pipeline(org)
    stage = factories.stages_of(pipeline)[2]
    service.stage_delete(stage.id)
    assert len(service.pipeline_get(pipeline.id).stages) == 4


def test_delete_pipeline_with_deals_refused_unless_moved(service, org):
    default = factories.make_pipeline(org, is_default=True)
    doomed = factories.make_pipeline(org, is_default=False)
    deal = factories.make_deal(org, stage=factories.stages_of(doomed)[0])
    with pytest.raises(ValidationError) as error:
        service.pipeline_delete(doomed.id)
    assert "move_to_stage_id" in error.value.field_errors
    with pytest.raises(ValidationError):
        service.pipeline_delete(default.id)  # the default cannot go
    target = factories.stages_of(default)[1]
    service.pipeline_delete(doomed.id, move_to_stage_id=target.id)
    refreshed = service.session.get(Deal, deal.id, populate_existing=True)
    assert (refreshed.pipeline_id, refreshed.stage_id) == (default.id, target.id)
    assert service.session.get(Pipeline, doomed.id) is None
    assert [p.id for p in service.pipeline_list()] == [default.id]


def test_other_org_ids_are_not_found(service, other_org):
    foreign = factories.make_pipeline(other_org)
    stage = factories.stages_of(foreign)[0]
    with pytest.raises(NotFound):
        service.pipeline_get(foreign.id)
    with pytest.raises(NotFound):
        service.pipeline_set_default(foreign.id)
    with pytest.raises(NotFound):
        service.stage_update(stage.id, name="x", probability=1, is_won=False, is_lost=False)
    with pytest.raises(NotFound):
        service.stage_delete(stage.id)
    with pytest.raises(NotFound):
        service.stage_lookup(stage.id)
    with pytest.raises(NotFound):
        service.pipeline_get(uuid.uuid4())


def test_stage_counts_from_one_query(service, org, count_queries):
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    factories.make_deal(org, stage=stages[0], value=100)
    factories.make_deal(org, stage=stages[0], value=50)
    factories.make_deal(org, stage=stages[3], value=70, status="won")
    with count_queries() as q:
        counts = service.stage_counts(pipeline.id)
    assert q.count == 1
    assert counts[stages[0].id].deals == 2 and counts[stages[0].id].open_value == 150
    assert counts[stages[3].id].deals == 1 and counts[stages[3].id].open_value == 0


# --- caching -------------------------------------------------------------------------------


def test_pipeline_list_is_cached_and_every_change_invalidates(service, org, count_queries):
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    service.pipeline_list()
    with count_queries() as q:
        service.pipeline_list()
        service.pipeline_get(pipeline.id)
        service.pipeline_get(pipeline.id)
    assert q.count == 1  # the per-pipeline key is filled once; the list is served from the cache

    def names():
        return [(p.name, [s.name for s in p.stages]) for p in service.pipeline_list()]

    def stage_names():
        return [s.name for s in service.pipeline_get(pipeline.id).stages]

    service.pipeline_update(pipeline.id, name="Renamed")
    assert names()[0][0] == "Renamed" and service.pipeline_get(pipeline.id).name == "Renamed"
    created = service.stage_create(pipeline.id, name="Extra", probability=5)
    assert "Extra" in stage_names() and "Extra" in names()[0][1]
    service.stage_update(created.id, name="Extra 2", probability=5, is_won=False, is_lost=False)
    assert "Extra 2" in stage_names()
    order = [s.id for s in reversed(factories.stages_of(pipeline))]
    service.stage_reorder(pipeline.id, order)
    assert [s.id for s in service.pipeline_get(pipeline.id).stages] == order
    service.stage_delete(stages[0].id)
    assert stages[0].id not in [s.id for s in service.pipeline_get(pipeline.id).stages]
    second = service.pipeline_create(name="Second")
    assert second.id in [p.id for p in service.pipeline_list()]
    service.pipeline_get(second.id)
    service.pipeline_set_default(second.id)
    assert service.pipeline_get(second.id).is_default and not service.pipeline_get(pipeline.id).is_default
    service.pipeline_delete(pipeline.id)
    assert [p.id for p in service.pipeline_list()] == [second.id]
    with pytest.raises(NotFound):
        service.pipeline_get(pipeline.id)


def test_cache_is_per_org(org, other_org, users):
    mine = factories.make_pipeline(org)
    theirs = factories.make_pipeline(other_org)
    admin = factories.actor_for(users["admin"])
    other_admin = factories.actor_for(factories.make_user(other_org, role="admin"))
    assert [p.id for p in PipelineService(admin).pipeline_list()] == [mine.id]
    assert [p.id for p in PipelineService(other_admin).pipeline_list()] == [theirs.id]

"""Cache generations and epochs (services/cache_versions.py): a change the cache could not be told of
changes the organisation's epoch, so its old entries never come back; normal writes cost nothing extra."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select

from crm_web.extensions import cache, db
from crm_web.models import Organization
from crm_web.services import cache_versions
from crm_web.services.cache import breaker
from crm_web.services.pipelines import PipelineService
from tests import factories


@pytest.fixture
def pipeline(org):
    return factories.make_pipeline(org, name="First name")


def _epoch_in_the_database(org) -> int:
    return db.session.scalar(
        select(Organization.cache_epoch).where(Organization.id == org.id).execution_options(populate_existing=True)
    )


def _cache_fails(monkeypatch) -> None:
    def down(*args, **kwargs):
        raise RedisConnectionError("connection refused")

    for name in ("get", "get_many", "set", "delete_many"):
        monkeypatch.setattr(cache, name, down)


def test_a_normal_write_costs_no_statement_and_keeps_the_epoch(actor, org, pipeline, count_queries):
    service = PipelineService(actor)
    assert service.pipeline_list()[0].name == "First name"
    with count_queries() as q:
        service.pipeline_update(pipeline.id, name="Second name")
    assert not [s for s in q.statements if "organizations" in s.lower()], q
    assert _epoch_in_the_database(org) == 0
    assert service.pipeline_list()[0].name == "Second name"  # a new generation: the old entry is not read


def test_a_write_while_the_breaker_is_open_changes_the_epoch_in_its_own_transaction(
    actor, org, pipeline, monkeypatch, count_queries
):
    service = PipelineService(actor)
    assert service.pipeline_list()[0].name == "First name"  # cached under epoch 0
    with monkeypatch.context() as patch:
        _cache_fails(patch)
        assert service.pipeline_list()[0].name == "First name"  # from the database; the breaker opens
        assert breaker.is_open()
        with count_queries() as q:
            service.pipeline_update(pipeline.id, name="Renamed while away")
        assert any("cache_epoch" in s for s in q.statements), q
    new_epoch = _epoch_in_the_database(org)
    assert new_epoch != 0 and cache_versions.epoch(db.session, org.id) == new_epoch
    breaker.reset()  # the cache is back: the entry of epoch 0 still holds the old name
    assert service.pipeline_list()[0].name == "Renamed while away"


def test_a_cache_that_fails_right_after_the_commit_changes_the_epoch_after_it(actor, org, pipeline, monkeypatch):
    service = PipelineService(actor)
    assert service.pipeline_list()[0].name == "First name"
    assert not breaker.is_open()
    with monkeypatch.context() as patch:
        _cache_fails(patch)  # the breaker is still closed when the transaction commits
        service.pipeline_update(pipeline.id, name="Renamed as the cache failed")
    assert breaker.is_open()
    assert _epoch_in_the_database(org) != 0
    breaker.reset()
    assert service.pipeline_list()[0].name == "Renamed as the cache failed"


def test_a_rolled_back_write_changes_nothing(actor, org, pipeline, monkeypatch):
    with monkeypatch.context() as patch:
        _cache_fails(patch)
        PipelineService(actor).pipeline_list()
        pipeline.name = "Never saved"
        db.session.flush()
        db.session.rollback()
    assert _epoch_in_the_database(org) == 0


def test_another_organisations_entries_keep_their_epoch(actor, org, other_org, pipeline, monkeypatch):
    stranger = factories.actor_for(factories.make_user(other_org, role="admin"))
    theirs = factories.make_pipeline(other_org, name="Theirs")
    with monkeypatch.context() as patch:
        _cache_fails(patch)
        PipelineService(actor).pipeline_list()
        PipelineService(actor).pipeline_update(pipeline.id, name="Ours, renamed")
    assert _epoch_in_the_database(other_org) == 0
    assert PipelineService(stranger).pipeline_get(theirs.id).name == "Theirs"


def test_a_request_reads_the_generations_once_and_again_after_its_own_changes(app, client, login, org, monkeypatch):
    """A page that keys several domains (the board: pipelines, headers, rates, tabs) reads the
    organisation's generations in one cache round trip; a commit in the request starts new ones, which
    the rest of the request reads."""
    reads: list[int] = []
    real = cache_versions.cache_get_many

    def counting(*keys):
        reads.append(len(keys))
        return real(*keys)

    monkeypatch.setattr(cache_versions, "cache_get_many", counting)
    login("manager")
    factories.make_pipeline(org)
    client.get("/deals/board")
    reads.clear()
    assert client.get("/deals/board").status_code == 200
    assert reads == [2 * len(cache_versions.ALL_DOMAINS)], reads
    with app.test_request_context():
        first = cache_versions.versioned_key(db.session, org.id, "deals", "x")
        assert cache_versions.versioned_key(db.session, org.id, "deals", "x") == first
        factories.make_deal(org)  # commits: a new generation of the deals
        assert cache_versions.versioned_key(db.session, org.id, "deals", "x") != first

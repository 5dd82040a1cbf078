"""The pipelines as every page reads them: the organisation's pipelines with their stages, cached.

Pipelines change rarely and are read on every board, deal form and move, so they are cached as
plain dataclasses (one list key and one key per pipeline, PIPELINE_CACHE_TIMEOUT seconds). The keys
carry the org's pipelines generation, which every commit that writes a pipeline or a stage renews
(whatever wrote it: the settings in services/pipelines.py, the CLI, a bulk statement), and its cache
epoch (services/cache_versions.py). With Redis the cache is shared by all app processes, so a change
is seen at once everywhere, even one made while Redis was unreachable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.orm import joinedload

from crm_web.errors import NotFound
from crm_web.models import Pipeline
from crm_web.replica import served_by_replica
from crm_web.services.base import BaseService
from crm_web.services.cache import cache_get, cache_set
from crm_web.services.cache_versions import versioned_key


@dataclass(frozen=True)
class StageInfo:
    id: uuid.UUID
    pipeline_id: uuid.UUID
    name: str
    position: int
    probability: int
    is_won: bool
    is_lost: bool
    rotting_days: int | None = None

    @property
    def is_closed(self) -> bool:
        return self.is_won or self.is_lost

    def rots(self, days_in_stage: int | None) -> bool:
        """An open stage with a rotting limit that `days_in_stage` went past."""
        return (
            self.rotting_days is not None
            and not self.is_closed
            and days_in_stage is not None
            and days_in_stage > self.rotting_days
        )


@dataclass(frozen=True)
class PipelineInfo:
    id: uuid.UUID
    name: str
    is_default: bool
    position: int
    currency: str
    stages: tuple[StageInfo, ...] = ()

    def stage(self, stage_id: uuid.UUID | None) -> StageInfo | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    @property
    def won_stage(self) -> StageInfo | None:
        return next((s for s in self.stages if s.is_won), None)

    @property
    def lost_stage(self) -> StageInfo | None:
        return next((s for s in self.stages if s.is_lost), None)

    @property
    def open_stages(self) -> list[StageInfo]:
        return [s for s in self.stages if not s.is_closed]


def _info(pipeline: Pipeline) -> PipelineInfo:
    return PipelineInfo(
        id=pipeline.id,
        name=pipeline.name,
        is_default=pipeline.is_default,
        position=pipeline.position,
        currency=pipeline.currency,
        stages=tuple(
            StageInfo(
                id=s.id,
                pipeline_id=s.pipeline_id,
                name=s.name,
                position=s.position,
                probability=s.probability,
                is_won=s.is_won,
                is_lost=s.is_lost,
                rotting_days=s.rotting_days,
            )
            for s in sorted(pipeline.stages, key=lambda s: (s.position, s.name))
        ),
    )


class PipelineCatalog(BaseService[Pipeline]):
    """Cached pipeline reads (everyone)."""

    model = Pipeline
    entity_type = "pipeline"

    # --- cache -------------------------------------------------------------------

    def list_key(self) -> str:
        """The cache key of the pipeline list (a page may prefetch it with its other entries)."""
        return versioned_key(self.session, self.org_id, "pipelines", "list")

    def _pipeline_key(self, pipeline_id: uuid.UUID) -> str:
        return versioned_key(self.session, self.org_id, "pipelines", pipeline_id)

    @staticmethod
    def _timeout() -> int:
        return int(current_app.config.get("PIPELINE_CACHE_TIMEOUT", 300))

    def _load(self, pipeline_id: uuid.UUID | None = None) -> list[PipelineInfo]:
        # One statement: pipelines joined with their stages.
        # populate_existing: what goes into the shared cache must be the database's truth,
        # not a copy this session holds from before a bulk UPDATE.
        stmt = (
            self.scoped()
            .options(joinedload(Pipeline.stages))
            .order_by(Pipeline.position, Pipeline.name, Pipeline.id)
            .execution_options(populate_existing=True)
        )
        if pipeline_id is not None:
            stmt = stmt.where(Pipeline.id == pipeline_id)
        return [_info(p) for p in self.session.scalars(stmt).unique().all()]

    # --- reading -----------------------------------------------------------------

    def pipeline_list(self) -> list[PipelineInfo]:
        """The org's pipelines with their stages, in order (cached)."""
        # Remembered for the request: a page asks for the list from several panels or helpers.
        cached = cache_get(self.list_key(), remember=True)
        if cached is not None:
            return list(cached)
        pipelines = self._load()
        if not served_by_replica(self.session):  # a replica a moment behind must not fill the cache
            cache_set(self.list_key(), pipelines, self._timeout())
        return pipelines

    def pipeline_get(self, pipeline_id: uuid.UUID) -> PipelineInfo:
        """One pipeline with its stages (cached); another org's id is NotFound."""
        cached = cache_get(self._pipeline_key(pipeline_id))
        if cached is not None:
            return cached
        found = self._load(pipeline_id)
        if not found:
            raise NotFound("That pipeline does not exist.")
        if not served_by_replica(self.session):
            cache_set(self._pipeline_key(pipeline_id), found[0], self._timeout())
        return found[0]

    def board_pipeline(self, pipeline_id: uuid.UUID | None = None) -> tuple[PipelineInfo | None, list[PipelineInfo]]:
        """The pipeline a board shows (the given one, else the default, else the first) and all of them."""
        pipelines = self.pipeline_list()
        if pipeline_id is not None:
            chosen = next((p for p in pipelines if p.id == pipeline_id), None)
            if chosen is None:
                raise NotFound("That pipeline does not exist.")
            return chosen, pipelines
        chosen = next((p for p in pipelines if p.is_default), pipelines[0] if pipelines else None)
        return chosen, pipelines

    def stage_lookup(self, stage_id: uuid.UUID) -> tuple[PipelineInfo, StageInfo]:
        """A stage of this org and its pipeline (from the cached list); unknown ids are NotFound."""
        for pipeline in self.pipeline_list():
            stage = pipeline.stage(stage_id)
            if stage is not None:
                return pipeline, stage
        raise NotFound("That stage does not exist.")

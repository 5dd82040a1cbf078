"""Pipeline settings: the settings page (pipelines with each stage's deal count and open value) and the
writes to pipelines and stages. Every commit that writes a pipeline or a stage renews the pipelines
generation, so the cached read model that boards, deal forms and moves read (services/pipeline_catalog.py)
is never stale (services/cache_versions.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError

from crm_web.errors import Conflict, NotFound, ValidationError
from crm_web.models import Deal, Pipeline, PipelineStage, Role
from crm_web.permissions import require_role
from crm_web.services.currencies import in_org_currency_sql, unconverted_sql
from crm_web.services.deal_stages import bulk_transition_values
from crm_web.services.integrity import integrity_to_validation
from crm_web.services.pipeline_catalog import PipelineCatalog, PipelineInfo, StageInfo
from crm_web.services.stats.cache import cached_stats

STARTER_STAGES: list[tuple[str, int, str | None]] = [
    ("New", 10, None),
    ("Qualified", 30, None),
    ("Proposal", 60, None),
    ("Won", 100, "won"),
    ("Lost", 0, "lost"),
]


@dataclass(frozen=True)
class StageCount:
    deals: int = 0
    open_value: Decimal = Decimal("0")  # in the organisation's currency
    unconverted: int = 0  # open deals in a currency without a rate: not in the value


@dataclass
class PipelineSettings:
    """The /pipelines page: every pipeline with its stages and each stage's deal count and open value."""

    pipelines: list[PipelineInfo]
    counts: dict[uuid.UUID, StageCount] = field(default_factory=dict)

    def count(self, stage_id: uuid.UUID) -> StageCount:
        return self.counts.get(stage_id, StageCount())

    def pipeline_deals(self, pipeline: PipelineInfo) -> int:
        return sum(self.count(s.id).deals for s in pipeline.stages)


class PipelineService(PipelineCatalog):
    """Pipeline settings (managers and admins): the settings page's reads and every pipeline and stage
    write; each commit of one makes the cached read model (services/pipeline_catalog.py) look for new keys."""

    def stage_counts(self, pipeline_id: uuid.UUID | None = None) -> dict[uuid.UUID, StageCount]:
        """Deal count and open value of every stage, from one GROUP BY query: the value in the
        organisation's currency, open deals in a currency without a rate counted apart (never summed as
        if they were in another currency)."""
        is_open = Deal.status == "open"
        stmt = (
            select(
                Deal.stage_id,
                func.count(Deal.id),
                func.coalesce(
                    func.sum(case((is_open, in_org_currency_sql(self.org_id, Deal.value, Deal.currency)), else_=0)), 0
                ),
                func.coalesce(
                    func.sum(case((and_(is_open, unconverted_sql(self.org_id, Deal.currency)), 1), else_=0)), 0
                ),
            )
            .where(Deal.org_id == self.org_id, Deal.stage_id.is_not(None))
            .group_by(Deal.stage_id)
        )
        if pipeline_id is not None:
            stmt = stmt.where(Deal.pipeline_id == pipeline_id)
        return {
            stage_id: StageCount(deals=int(count), open_value=Decimal(value or 0), unconverted=int(unconverted or 0))
            for stage_id, count, value, unconverted in self.session.execute(stmt)
        }

    def settings(self) -> PipelineSettings:
        """The settings page: cached pipelines and stage counts (an aggregate of every deal of the
        organisation, cached until a deal, a stage or a rate changes)."""
        self._require_manager("manage pipelines")
        counts = cached_stats(self.org_id, "deals", "stage_counts", self.stage_counts)
        return PipelineSettings(pipelines=self.pipeline_list(), counts=counts)

    def settings_pipeline(self, pipeline_id: uuid.UUID) -> PipelineInfo:
        """A pipeline for a settings form (managers and admins only)."""
        self._require_manager("manage pipelines")
        return self.pipeline_get(pipeline_id)

    def settings_stage(self, stage_id: uuid.UUID) -> tuple[PipelineInfo, StageInfo]:
        """A stage for a settings form (managers and admins only)."""
        self._require_manager("manage pipelines")
        return self.stage_lookup(stage_id)

    # --- pipeline writes ---------------------------------------------------------

    def _require_manager(self, action: str = "manage pipelines") -> None:
        require_role(self.actor.role, Role.MANAGER, action)

    def check_can_manage(self) -> None:
        """Only managers and admins see pipeline settings."""
        self._require_manager()

    def _pipeline_row(self, pipeline_id: uuid.UUID) -> Pipeline:
        return self.get(pipeline_id, query=self.scoped())

    def pipeline_create(
        self, *, name: str, currency: str = "USD", is_default: bool = False, starter_stages: bool = True
    ) -> Pipeline:
        """Managers create pipelines; a new default demotes the old one in the same transaction."""
        self._require_manager("create pipelines")
        position = self.session.scalar(self.scoped(select(func.coalesce(func.max(Pipeline.position), -1) + 1)))
        pipeline = Pipeline(org_id=self.org_id, name=name.strip(), currency=currency, position=position or 0)
        self.session.add(pipeline)
        self.session.flush()
        self.session.add_all(PipelineStage.listed(pipeline, STARTER_STAGES if starter_stages else []))
        self.history(pipeline, "created")
        if is_default:
            self._make_default(pipeline)
        self.commit()
        return pipeline

    def pipeline_update(self, pipeline_id: uuid.UUID, *, name: str, currency: str | None = None) -> Pipeline:
        """Rename a pipeline (or change its currency)."""
        self._require_manager("change pipelines")
        pipeline = self._pipeline_row(pipeline_id)
        values: dict[str, Any] = {"name": name.strip()}
        if currency:
            values["currency"] = currency
        return self.save_changes(pipeline, self.set_values(pipeline, values))

    def pipeline_set_default(self, pipeline_id: uuid.UUID) -> Pipeline:
        """Exactly one default per org: the previous default is demoted in the same transaction. Making
        the default pipeline the default again (a double click, two tabs) changes nothing."""
        self._require_manager("change the default pipeline")
        pipeline = self._pipeline_row(pipeline_id)
        if self._make_default(pipeline):
            self.history(pipeline, "updated", {"is_default": [False, True]})
        self.commit()
        return pipeline

    def _lock_pipelines(self) -> None:
        """Row locks on the organisation's pipelines, in id order (no deadlock): two changes of the
        default take turns, and the second sees the first's result (on SQLite writers take turns anyway)."""
        self.session.scalars(  # fetched: populate_existing refreshes the objects as the rows are read
            self.scoped(select(Pipeline))
            .order_by(Pipeline.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()

    def _make_default(self, pipeline: Pipeline) -> bool:
        """Make `pipeline` the default; False when it already was."""
        self._lock_pipelines()
        if pipeline.is_default:
            return False
        try:
            self._promote(pipeline)
        except IntegrityError as error:  # a writer that did not take the locks (a script): refuse, not 500
            self.session.rollback()
            raise Conflict("Another pipeline was made the default at the same moment. Reload and try again.") from error
        return True

    def _promote(self, pipeline: Pipeline) -> None:
        demoted = list(
            self.session.scalars(
                self.scoped(select(Pipeline.id)).where(Pipeline.is_default.is_(True), Pipeline.id != pipeline.id)
            )
        )
        if demoted:
            self.session.execute(
                update(Pipeline)
                .where(Pipeline.org_id == self.org_id, Pipeline.id.in_(demoted))
                .values(is_default=False)
                .execution_options(synchronize_session="evaluate")
            )
        # The partial unique index is checked per statement: the demotion must reach the
        # database before the promotion, never in the same flush in arbitrary order.
        self.session.flush()
        pipeline.is_default = True
        self.session.flush()

    def pipeline_delete(self, pipeline_id: uuid.UUID, *, move_to_stage_id: uuid.UUID | None = None) -> None:
        """A pipeline holding deals is deleted only after its deals move to a stage of another pipeline."""
        self._require_manager("delete pipelines")
        pipeline = self._pipeline_row(pipeline_id)
        if pipeline.is_default:
            raise ValidationError(
                "The default pipeline cannot be deleted. Make another pipeline the default first.",
                {"move_to_stage_id": "Make another pipeline the default first."},
            )
        self._move_deals_away(
            Deal.pipeline_id == pipeline.id,
            move_to_stage_id,
            holds="This pipeline holds {deals} deal(s). Choose a stage of another pipeline to move them to.",
            allowed=lambda target: target.pipeline_id != pipeline.id,
            refused="Choose a stage of another pipeline.",
        )
        self.history(pipeline, "deleted")
        self.session.delete(pipeline)  # stages go by ON DELETE CASCADE (passive_deletes)
        self.commit()

    # --- stage writes ------------------------------------------------------------

    def _stage_row(self, stage_id: uuid.UUID) -> PipelineStage:
        stage = self.session.scalars(
            select(PipelineStage).where(PipelineStage.org_id == self.org_id, PipelineStage.id == stage_id)
        ).one_or_none()
        if stage is None:
            raise NotFound("That stage does not exist.")
        return stage

    def _flush_stage(self, values: dict[str, Any]) -> None:
        try:
            self.session.flush()
        except IntegrityError as error:
            self.session.rollback()
            raise self._stage_error(error, values) from error

    @staticmethod
    def _stage_error(error: IntegrityError, values: dict[str, Any]) -> ValidationError:
        """Constraint -> field error. SQLite names no index in a UNIQUE failure, so the flags decide."""
        mapped = integrity_to_validation(error)
        if mapped.field_errors:
            return mapped
        if "pipeline_stages" in str(error.orig):
            if values.get("is_won"):
                return ValidationError(
                    "This pipeline already has a won stage.", {"is_won": "This pipeline already has a won stage."}
                )
            if values.get("is_lost"):
                return ValidationError(
                    "This pipeline already has a lost stage.", {"is_lost": "This pipeline already has a lost stage."}
                )
        return mapped

    def stage_create(
        self,
        pipeline_id: uuid.UUID,
        *,
        name: str,
        probability: int = 0,
        is_won: bool = False,
        is_lost: bool = False,
        rotting_days: int | None = None,
    ) -> PipelineStage:
        """Add a stage at the end; the database refuses a second won/lost stage or a bad probability."""
        self._require_manager("change stages")
        pipeline = self._pipeline_row(pipeline_id)
        position = self.session.scalar(
            select(func.coalesce(func.max(PipelineStage.position), -1) + 1).where(
                PipelineStage.pipeline_id == pipeline.id
            )
        )
        values = {"name": name.strip(), "probability": probability, "is_won": bool(is_won), "is_lost": bool(is_lost)}
        stage = PipelineStage(
            rotting_days=_rotting(rotting_days),
            org_id=self.org_id,
            pipeline_id=pipeline.id,
            position=position or 0,
            **values,
        )
        self.session.add(stage)
        self._flush_stage(values)
        self.history(pipeline, "updated", {"stage_added": [None, stage.name]})
        self.commit()
        return stage

    def stage_update(
        self,
        stage_id: uuid.UUID,
        *,
        name: str,
        probability: int,
        is_won: bool,
        is_lost: bool,
        rotting_days: int | None = None,
    ) -> PipelineStage:
        """Rename a stage, change its probability, its won/lost flag or its rotting limit."""
        self._require_manager("change stages")
        stage = self._stage_row(stage_id)
        values = {"name": name.strip(), "probability": probability, "is_won": bool(is_won), "is_lost": bool(is_lost)}
        changes = self.set_values(stage, {**values, "rotting_days": _rotting(rotting_days)})
        self._flush_stage(values)
        if changes:
            record = {f"stage.{k}": v for k, v in changes.items()}
            self.history(_StageRef(stage.pipeline_id, stage.name), "updated", record)
        self.commit()
        return stage

    def stage_reorder(self, pipeline_id: uuid.UUID, stage_ids: Sequence[uuid.UUID]) -> None:
        """The new order must list every stage of the pipeline exactly once (one executemany)."""
        self._require_manager("reorder stages")
        pipeline = self._pipeline_row(pipeline_id)
        current = set(self.session.scalars(select(PipelineStage.id).where(PipelineStage.pipeline_id == pipeline.id)))
        if len(stage_ids) != len(current) or set(stage_ids) != current:
            raise ValidationError("The stage list is out of date. Reload the page and try again.")
        self.session.execute(
            update(PipelineStage),
            [{"id": stage_id, "position": index} for index, stage_id in enumerate(stage_ids)],
        )
        self.history(pipeline, "updated", {"stages_reordered": True})
        self.commit()

    def stage_delete(self, stage_id: uuid.UUID, *, move_to_stage_id: uuid.UUID | None = None) -> None:
        """A stage holding deals is deleted only after its deals move to another stage of the pipeline."""
        self._require_manager("delete stages")
        stage = self._stage_row(stage_id)
        self._move_deals_away(
            Deal.stage_id == stage.id,
            move_to_stage_id,
            holds="This stage holds {deals} deal(s). Choose where to move them.",
            allowed=lambda target: target.pipeline_id == stage.pipeline_id and target.id != stage.id,
            refused="Choose another stage of the same pipeline.",
        )
        self.history(_StageRef(stage.pipeline_id, stage.name), "updated", {"stage_deleted": [stage.name, None]})
        self.session.delete(stage)
        self.commit()

    # --- helpers -----------------------------------------------------------------

    def _move_deals_away(
        self,
        criterion: Any,
        move_to_stage_id: uuid.UUID | None,
        *,
        holds: str,
        allowed: Callable[[Any], bool],
        refused: str,
    ) -> None:
        """Before a pipeline or stage goes: its deals (if any) move to the chosen stage, which must be
        `allowed`; without a choice the delete is refused with `holds` (formatted with the count)."""
        deals = self._deal_count(criterion)
        if not deals:
            return
        if move_to_stage_id is None:
            message = holds.format(deals=deals)
            raise ValidationError(message, {"move_to_stage_id": message})
        _, target = self.stage_lookup(move_to_stage_id)
        if not allowed(target):
            raise ValidationError(refused, {"move_to_stage_id": refused})
        self._move_all_deals(criterion, target)

    def _deal_count(self, criterion: Any) -> int:
        # Trashed deals count too: they would lose their stage when it goes.
        return (
            self.session.scalar(
                select(func.count(Deal.id))
                .where(Deal.org_id == self.org_id, criterion)
                .execution_options(include_deleted=True)
            )
            or 0
        )

    def _move_all_deals(self, criterion: Any, target: StageInfo) -> None:
        self.session.execute(
            update(Deal)
            .where(Deal.org_id == self.org_id, criterion)
            .values(pipeline_id=target.pipeline_id, version=Deal.version + 1, **bulk_transition_values(target))
            .execution_options(synchronize_session=False)
        )


def _rotting(days: int | None) -> int | None:
    """A rotting limit of at least one day (the form's range); anything else means none."""
    if days is None or not 1 <= int(days) <= 3650:
        return None
    return int(days)


@dataclass(frozen=True)
class _StageRef:
    """Stage changes are recorded in the pipeline's history (stages have no history of their own)."""

    id: uuid.UUID
    name: str

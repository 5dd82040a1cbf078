"""Sales pipelines and their ordered stages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_web.models.base import Base, IdMixin, OrgScopedMixin, TimestampMixin
from crm_web.models.mixins import one_flagged_per


class Pipeline(IdMixin, TimestampMixin, OrgScopedMixin, Base):
    __tablename__ = "pipelines"
    __table_args__ = (one_flagged_per("unique_default_pipeline_per_org", "org_id", "is_default"),)

    name: Mapped[str] = mapped_column(String(120))
    is_default: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")

    stages: Mapped[list[PipelineStage]] = relationship(
        back_populates="pipeline",
        order_by="PipelineStage.position",
        lazy="raise_on_sql",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class PipelineStage(IdMixin, TimestampMixin, OrgScopedMixin, Base):
    __tablename__ = "pipeline_stages"
    __table_args__ = (
        one_flagged_per("unique_won_stage_per_pipeline", "pipeline_id", "is_won"),
        one_flagged_per("unique_lost_stage_per_pipeline", "pipeline_id", "is_lost"),
        CheckConstraint("NOT (is_won AND is_lost)", name="stage_not_both_won_and_lost"),
        CheckConstraint("probability >= 0 AND probability <= 100", name="stage_probability_valid_range"),
        Index("ix_pipeline_stages_pipeline_position", "pipeline_id", "position"),
    )

    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)
    probability: Mapped[int] = mapped_column(default=0)
    is_won: Mapped[bool] = mapped_column(default=False)
    is_lost: Mapped[bool] = mapped_column(default=False)
    # A deal open in this stage longer than this many days is rotting; None: never.
    rotting_days: Mapped[int | None]

    pipeline: Mapped[Pipeline] = relationship(back_populates="stages", lazy="raise_on_sql")

    @property
    def is_closed(self) -> bool:
        return self.is_won or self.is_lost

    @classmethod
    def listed(cls, pipeline: Pipeline, specs: Iterable[tuple[str, int, str | None]]) -> list[PipelineStage]:
        """New stages of `pipeline` in the order given, from (name, probability, "won" | "lost" | None)."""
        return [
            cls(
                org_id=pipeline.org_id,
                pipeline_id=pipeline.id,
                name=name,
                position=position,
                probability=probability,
                is_won=kind == "won",
                is_lost=kind == "lost",
            )
            for position, (name, probability, kind) in enumerate(specs)
        ]

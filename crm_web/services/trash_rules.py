"""What a restore or purge from the trash does besides un-deleting or deleting rows, per entity
(named by the entity registry's TrashRule): deals re-homed to a live stage, contacts' last activity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from crm_web.models import Deal, Pipeline, PipelineStage, utcnow
from crm_web.services.last_activity import contacts_of_activities, refresh_last_activity


def rehome_deals(
    session: Session, org_id: uuid.UUID, deals: Sequence[Any]
) -> tuple[list[tuple[Any, str]], dict[uuid.UUID, dict[str, Any]]]:
    """Deals (trash items) whose stage or pipeline is gone move to the default pipeline's first stage:
    (the moved items with where they went, history changes per moved id)."""
    live_stage = aliased(PipelineStage)
    ids = [d.id for d in deals]
    homeless = set(
        session.scalars(
            select(Deal.id)
            .outerjoin(
                live_stage,
                (live_stage.id == Deal.stage_id)
                & (live_stage.pipeline_id == Deal.pipeline_id)
                & (live_stage.org_id == Deal.org_id),
            )
            .where(Deal.org_id == org_id, Deal.id.in_(ids), live_stage.id.is_(None))
            .execution_options(include_deleted=True)
        )
    )
    if not homeless:
        return [], {}
    target = session.execute(
        select(PipelineStage.id, PipelineStage.pipeline_id, PipelineStage.name, Pipeline.name)
        .join(Pipeline, Pipeline.id == PipelineStage.pipeline_id)
        .where(Pipeline.org_id == org_id)
        .order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.created_at, PipelineStage.position)
        .limit(1)
    ).first()
    moved = [d for d in deals if d.id in homeless]
    if target is None:
        where = "no stage (the organisation has no pipeline)"
        return [(d, where) for d in moved], {d.id: {"stage": ["(deleted stage)", None]} for d in moved}
    stage_id, pipeline_id, stage_name, pipeline_name = target
    top = session.scalar(
        select(func.max(Deal.position))
        .where(Deal.org_id == org_id, Deal.stage_id == stage_id)
        .execution_options(include_deleted=True)
    )
    session.execute(
        update(Deal)
        .where(Deal.org_id == org_id, Deal.id.in_([d.id for d in moved]))
        .values(
            pipeline_id=pipeline_id,
            stage_id=stage_id,
            stage_changed_at=utcnow(),
            position=(top or 0) + 1,
            version=Deal.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    where = f"{pipeline_name} › {stage_name}"
    changes = {"stage": ["(deleted stage)", where], "relocated": True}
    return [(d, where) for d in moved], {d.id: dict(changes) for d in moved}


def refresh_contacts_of_activities(
    session: Session, org_id: uuid.UUID, activity_ids: Sequence[uuid.UUID]
) -> Callable[[], None]:
    """Before activities are restored or purged: their contacts; after: those contacts' last activity."""
    contact_ids = contacts_of_activities(session, org_id, activity_ids)
    return lambda: refresh_last_activity(session, org_id, contact_ids)

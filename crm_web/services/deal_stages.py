"""The stage-transition rule every way of moving a deal uses (the form, the board, won/lost, a pipeline
or stage deleted with its deals moved, the trash re-homing a deal).

Entering a won stage makes the deal won and stamps closed_at; entering a lost stage makes it lost
(with an optional reason) and stamps closed_at; entering an open stage from a closed state reopens
it. A deal's own probability is kept (None means "follow the stage"); the weighted value formula
in services/stats/formula.py counts won deals 100 % and lost deals 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, literal

from crm_web.models import Deal, utcnow
from crm_web.services.history import snapshot_changes

if TYPE_CHECKING:
    from crm_web.services.pipeline_catalog import StageInfo


def apply_stage(
    deal: Deal, stage: StageInfo, *, lost_reason: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Put `deal` in `stage` with the status that stage implies; returns {field: [old, new]}."""
    now = now or utcnow()
    values: dict[str, Any] = {}
    if deal.stage_id != stage.id or deal.pipeline_id != stage.pipeline_id:
        values.update(stage_id=stage.id, pipeline_id=stage.pipeline_id, stage_changed_at=now)
        if stage.is_won and deal.status != "won":
            values.update(status="won", closed_at=now, lost_reason=None)
        elif stage.is_lost and deal.status != "lost":
            values.update(status="lost", closed_at=now)
        elif not stage.is_closed and deal.status != "open":
            values.update(status="open", closed_at=None, lost_reason=None)
    if stage.is_lost and lost_reason:
        values["lost_reason"] = lost_reason.strip()[:255]
    changes = snapshot_changes(deal, values, ignored={"stage_changed_at", "pipeline_id"})
    for name, value in values.items():
        setattr(deal, name, value)
    return changes


def bulk_transition_values(stage: StageInfo) -> dict[str, Any]:
    """The same rule as `apply_stage`, as UPDATE ... SET values for many deals at once (a deal already
    in `stage` keeps the time it entered it)."""
    now = literal(utcnow(), Deal.closed_at.type)
    entered = case((Deal.stage_id == stage.id, func.coalesce(Deal.stage_changed_at, now)), else_=now)
    values: dict[str, Any] = {"stage_id": stage.id, "stage_changed_at": entered}
    if stage.is_won:
        values.update(status="won", closed_at=case((Deal.status == "won", Deal.closed_at), else_=now))
    elif stage.is_lost:
        values.update(status="lost", closed_at=case((Deal.status == "lost", Deal.closed_at), else_=now))
    else:
        values.update(status="open", closed_at=None)
    return values

"""The one written formula for weighted pipeline value, used by the board, the dashboard and the API.

Open deals count value x probability / 100 (the deal's own probability, else its stage's);
won deals count 100 %; lost deals count 0.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Numeric, case, cast, func

from crm_web.models import Deal, PipelineStage


def effective_probability(deal: type[Deal] = Deal, stage: type[PipelineStage] = PipelineStage) -> ColumnElement:
    """A deal's probability in percent; the query must (outer) join `stage` on Deal.stage_id."""
    return case(
        (deal.status == "won", 100),
        (deal.status == "lost", 0),
        else_=func.coalesce(deal.probability, stage.probability, 0),
    )


def weighted_value(deal: type[Deal] = Deal, stage: type[PipelineStage] = PipelineStage) -> ColumnElement:
    """SQL expression: the deal's weighted value (see module docstring)."""
    # Rounded to the cent per deal (round() too: SQLite's CAST to NUMERIC does not round), as the
    # tallies' triggers do (migration 0010).
    return cast(func.round(deal.value * effective_probability(deal, stage) / 100, 2), Numeric(16, 2))

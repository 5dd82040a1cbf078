"""The one written formula for weighted pipeline value, used by the board, the dashboard and the API.

Open deals count value x probability / 100 (the deal's own probability, else its stage's);
won deals count 100 %; lost deals count 0.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

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


def weighted_value_of(
    *, value: Decimal, status: str, probability: int | None, stage_probability: int | None
) -> Decimal:
    """The same formula in Python, for a single deal already in memory."""
    if status == "won":
        percent = 100
    elif status == "lost":
        percent = 0
    else:
        percent = probability if probability is not None else (stage_probability or 0)
    # Half up, as PostgreSQL rounds numeric (Python's default, half even, made 0.025 -> 0.02, not 0.03).
    return (Decimal(value) * percent / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

"""Chart geometry for the server-rendered SVG macros (templates/components/chart_*.html). Pure functions."""

from __future__ import annotations

import math
from decimal import Decimal


def nice_scale(max_value: float | Decimal | int, ticks: int = 4, *, integer: bool = False) -> tuple[float, list[float]]:
    """An axis maximum >= max_value on a 1/2/2.5/5 x 10^n step, and the tick values from 0 to it.

    `integer` (counts) keeps every tick a whole number.
    """
    top = float(max_value or 0)
    if top <= 0:
        return 1.0, [0.0, 1.0]
    raw_step = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw_step))
    multipliers = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multipliers if m * magnitude >= raw_step)
    if integer:
        step = max(1.0, float(round(step)))
    axis_max = step * math.ceil(top / step - 1e-9)
    count = round(axis_max / step)
    return axis_max, [round(step * i, 6) for i in range(count + 1)]

"""What a column can hold, read from its type in one place: the numeric range of an Integer, BigInteger
or Numeric(precision, scale) column, and the calendar range a date filter may name. Forms (the
`ColumnRange` validator), the services' writes (`check_column_values`) and the filter engine
(crm_web/filters/grammar.py) all ask here, so no input overflows a column into a 500."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import BigInteger, Integer, Numeric, SmallInteger
from sqlalchemy.types import TypeEngine

# The calendar a date filter may name: Python's own range, less the last day, so "on that day" (which
# ends at the start of the next day) always has an end.
DATE_MIN = date(1, 1, 1)
DATE_MAX = date(9999, 12, 30)
DATE_RANGE_MESSAGE = f"dates must be between {DATE_MIN.isoformat()} and {DATE_MAX.isoformat()}."


@dataclass(frozen=True)
class NumberLimits:
    """The values a numeric column stores: [low, high], with `places` decimal places (0: whole numbers)."""

    low: Decimal
    high: Decimal
    places: int

    def narrowed(self, low: Any = None, high: Any = None) -> NumberLimits:
        """These limits within a domain's own (a value is never negative, a score at most 100)."""
        new_low = self.low if low is None else max(self.low, Decimal(low))
        new_high = self.high if high is None else min(self.high, Decimal(high))
        return NumberLimits(new_low, new_high, self.places)

    def describe(self) -> str:
        return f"between {_format(self.low, self.places)} and {_format(self.high, self.places)}"

    def problem(self, value: Any) -> str | None:
        """Why the column cannot hold `value` (rounded to its places the way the database rounds), or
        None when it can."""
        if value is None or isinstance(value, bool):
            return None
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
        except (InvalidOperation, ValueError):
            return "must be a number."
        if not number.is_finite():
            return "must be a number."
        # Far outside the range first: quantizing a huge exponent would itself fail.
        if number < self.low - 1 or number > self.high + 1:
            return f"must be {self.describe()}."
        rounded = number.quantize(Decimal(1).scaleb(-self.places), rounding=ROUND_HALF_UP)
        if not self.low <= rounded <= self.high:
            return f"must be {self.describe()}."
        return None


def _format(value: Decimal, places: int) -> str:
    return f"{value:,.{places}f}"


def _integer_limits(bits: int) -> NumberLimits:
    return NumberLimits(Decimal(-(2 ** (bits - 1))), Decimal(2 ** (bits - 1) - 1), 0)


def type_limits(type_: TypeEngine[Any]) -> NumberLimits | None:
    """The range of a numeric SQL type (PostgreSQL's sizes, the narrower engine), None for other types."""
    if isinstance(type_, SmallInteger):
        return _integer_limits(16)
    if isinstance(type_, BigInteger):
        return _integer_limits(64)
    if isinstance(type_, Integer):
        return _integer_limits(32)
    if isinstance(type_, Numeric) and type_.precision is not None:  # Float is a Numeric without precision
        scale = type_.scale or 0
        high = Decimal(10) ** (type_.precision - scale) - Decimal(1).scaleb(-scale)
        return NumberLimits(-high, high, scale)
    return None


def column_limits(column: Any) -> NumberLimits | None:
    """The limits of a model attribute or table column (`Deal.value`), None when not numeric."""
    type_ = getattr(column, "type", None)
    return type_limits(type_) if isinstance(type_, TypeEngine) else None


def column_problems(model: Any, values: Mapping[str, Any]) -> dict[str, str]:
    """Field errors for the values a model's numeric columns cannot hold (a service's last check before
    a write, whatever path the values came by)."""
    columns = model.__table__.columns
    problems: dict[str, str] = {}
    for name, value in values.items():
        if name not in columns:
            continue
        limits = column_limits(columns[name])
        problem = limits.problem(value) if limits is not None else None
        if problem:
            problems[name] = f"{name.replace('_', ' ').capitalize()} {problem}"
    return problems


class ColumnRange:
    """WTForms validator: the number fits the column (and the optional domain range). Stops the chain,
    so a later NumberRange never compares a NaN (which raises)."""

    def __init__(self, column: Any, *, min: Any = None, max: Any = None) -> None:
        limits = column_limits(column)
        if limits is None:
            raise TypeError(f"{column!r} is not a numeric column")
        self.limits = limits.narrowed(min, max)

    def __call__(self, form: Any, field: Any) -> None:
        from wtforms.validators import StopValidation

        problem = self.limits.problem(field.data)
        if problem:
            field.errors[:] = []
            number = problem != "must be a number."
            raise StopValidation(f"Must be {self.limits.describe()}." if number else "Enter a number.")

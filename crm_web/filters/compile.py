"""A FilterSpec as one SQL boolean clause, checked again against the whitelist. Adds no joins:
related columns and tags compile to EXISTS (`has()` / `any()`), so counts stay exact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, and_, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from crm_web import clock
from crm_web.errors import ValidationError
from crm_web.filters.types import NEGATIONS, OPERATORS_BY_TYPE, Condition, FieldType, FilterField, FilterSpec

LIKE_ESCAPE = "\\"


def _q(text: str) -> str:
    return '"' + (text if len(text) <= 60 else text[:57] + "...") + '"'


def _like_escape(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _numeric(value: Any) -> Any:
    # An integral Decimal stays exact; a fractional one is bound as NUMERIC (SQLite's driver
    # cannot bind Decimal against an INTEGER column's type).
    if isinstance(value, Decimal):
        return literal(value, Numeric(asdecimal=True))
    return value


@dataclass(frozen=True)
class _Calendar:
    """Where relative dates are anchored: today, and the time zone whose midnights bound a day."""

    today: date
    tz: tzinfo
    now: datetime

    def day_start(self, day: date) -> datetime:
        """Midnight starting `day` in the organisation's time zone, as a UTC instant."""
        return datetime.combine(day, time.min, tzinfo=self.tz).astimezone(UTC)


def _relative_range(name: str, today: date) -> tuple[date, date]:
    """[start, end) as dates; weeks start on Monday."""
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)

    def add_months(day: date, months: int) -> date:
        index = day.year * 12 + day.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)

    return {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "thisWeek": (monday, monday + timedelta(days=7)),
        "lastWeek": (monday - timedelta(days=7), monday),
        "nextWeek": (monday + timedelta(days=7), monday + timedelta(days=14)),
        "thisMonth": (first, add_months(first, 1)),
        "lastMonth": (add_months(first, -1), first),
        "nextMonth": (add_months(first, 1), add_months(first, 2)),
        "last7Days": (today - timedelta(days=6), today + timedelta(days=1)),
        "last30Days": (today - timedelta(days=29), today + timedelta(days=1)),
        "next7Days": (today, today + timedelta(days=7)),
        "next30Days": (today, today + timedelta(days=30)),
        "thisYear": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
    }[name]


def _date_bounds(ff: FilterField, cal: _Calendar, start: date, end: date) -> tuple[Any, Any]:
    if ff.type is FieldType.DATETIME:
        return cal.day_start(start), cal.day_start(end)
    return start, end


def _lower_bound(ff: FilterField, cal: _Calendar, column: Any, value: Any, strict: bool) -> ColumnElement[bool]:
    """column after value (strict) / from value on: a date covers its whole day."""
    if ff.type is FieldType.DATETIME and not isinstance(value, datetime):
        day = value + timedelta(days=1) if strict else value
        return column >= cal.day_start(day)
    return column > value if strict else column >= value


def _upper_bound(ff: FilterField, cal: _Calendar, column: Any, value: Any, strict: bool) -> ColumnElement[bool]:
    if ff.type is FieldType.DATETIME and not isinstance(value, datetime):
        day = value if strict else value + timedelta(days=1)
        return column < cal.day_start(day)
    return column < value if strict else column <= value


def _positive(ff: FilterField, op: str, column: Any, value: Any, cal: _Calendar) -> ColumnElement[bool]:
    kind = ff.type
    if kind is FieldType.TEXT:
        if op == "isNotEmpty":
            return and_(column.is_not(None), column != "")
        pattern = _like_escape(value)
        pattern = {
            "equals": pattern,
            "contains": f"%{pattern}%",
            "startsWith": f"{pattern}%",
            "endsWith": f"%{pattern}",
        }[op]
        # ILIKE on the bare column, so a trigram GIN index can serve contains on PostgreSQL.
        return column.ilike(pattern, escape=LIKE_ESCAPE)
    if op == "isNotEmpty":
        return column.is_not(None)
    if op == "isTrue":
        return column.is_(True)
    if op == "in":
        return column.in_(list(value))
    if kind in (FieldType.NUMBER, FieldType.MONEY):
        if op == "between":
            return and_(column >= _numeric(value[0]), column <= _numeric(value[1]))
        compare = {
            "equals": column.__eq__,
            "greaterThan": column.__gt__,
            "greaterOrEqual": column.__ge__,
            "lessThan": column.__lt__,
            "lessOrEqual": column.__le__,
        }[op]
        return compare(_numeric(value))
    if kind in (FieldType.DATE, FieldType.DATETIME):
        if op == "onDate":
            start, end = _date_bounds(ff, cal, value, value + timedelta(days=1))
            return and_(column >= start, column < end)
        if op == "before":
            return _upper_bound(ff, cal, column, value, strict=True)
        if op == "after":
            return _lower_bound(ff, cal, column, value, strict=True)
        if op == "between":
            return and_(
                _lower_bound(ff, cal, column, value[0], strict=False),
                _upper_bound(ff, cal, column, value[1], strict=False),
            )
        if op == "inRange":
            start, end = _date_bounds(ff, cal, *_relative_range(value, cal.today))
            return and_(column >= start, column < end)
    if op == "equals":  # UUID, CHOICE
        return column == value
    raise AssertionError(f"no compilation for {kind.value} {op}")  # unreachable after validation


def _columns(ff: FilterField, cal: _Calendar) -> tuple[Any, ...]:
    if ff.computed is not None:
        return (ff.computed(cal.now),)
    if ff.columns:
        return ff.columns
    if ff.type is FieldType.TAG:  # default: the tag's primary key
        return tuple(ff.via.property.mapper.primary_key[:1])
    raise ValueError(f"filter field {_q(ff.label)} has no column")


def _exists(via: Any, criterion: ColumnElement[bool] | None) -> ColumnElement[bool]:
    if via.property.uselist:
        return via.any(criterion) if criterion is not None else via.any()
    return via.has(criterion) if criterion is not None else via.has()


def _compile_condition(condition: Condition, ff: FilterField, cal: _Calendar) -> ColumnElement[bool]:
    op = condition.op
    positive_op = NEGATIONS.get(op, op)
    negate = positive_op != op
    columns = _columns(ff, cal)
    if ff.predicate is not None:
        clause = ff.predicate(positive_op, condition.value)  # NULL for a row without the value
        return not_(func.coalesce(clause, false())) if negate else clause
    if ff.type is FieldType.TAG:
        criterion = None if positive_op == "isNotEmpty" else columns[0].in_(list(condition.value))
        clause = _exists(ff.via, criterion)
        return not_(clause) if negate else clause
    if ff.via is not None:
        clause = _exists(ff.via, or_(*(_positive(ff, positive_op, c, condition.value, cal) for c in columns)))
        # NOT EXISTS: a row without a related row matches every negative operator.
        return not_(clause) if negate else clause
    if not negate:
        return or_(*(_positive(ff, op, c, condition.value, cal) for c in columns))
    if op == "isEmpty":
        return and_(*(or_(c.is_(None), c == "") if ff.type is FieldType.TEXT else c.is_(None) for c in columns))
    # NULL-safe: an empty column is "not equal to x" and "does not contain x".
    return and_(*(or_(c.is_(None), not_(_positive(ff, positive_op, c, condition.value, cal))) for c in columns))


def _combine(clauses: Sequence[ColumnElement[bool]], match: str) -> ColumnElement[bool]:
    if len(clauses) == 1:
        return clauses[0]
    return or_(*clauses) if match == "any" else and_(*clauses)


def compile_filter(
    spec: FilterSpec, fields: Mapping[str, FilterField], *, now: datetime | None = None, tz: tzinfo = UTC
) -> ColumnElement[bool] | None:
    """One boolean clause for `.where(...)`, or None for an empty spec. Adds no joins.

    `now` (aware; default: the current UTC time) anchors relative date ranges; `tz` (the organisation's
    time zone) says which day it is and where a day starts, for relative ranges and for dates compared
    with datetime columns.
    """
    if spec.is_empty:
        return None
    moment = now if now is not None else clock.now()
    cal = _Calendar(today=(moment.astimezone(tz) if moment.tzinfo else moment).date(), tz=tz, now=moment)

    def one(index: int, condition: Condition) -> ColumnElement[bool]:
        ff = fields.get(condition.field)
        if ff is None or condition.op not in OPERATORS_BY_TYPE[ff.type]:
            raise ValidationError(
                f"Filter condition {index + 1}: {condition.field}.{condition.op} is not allowed.",
                {f"f[{index}]": "Unknown field or operator."},
            )
        return _compile_condition(condition, ff, cal)

    index = 0
    clauses: list[ColumnElement[bool]] = []
    for condition in spec.conditions:
        clauses.append(one(index, condition))
        index += 1
    for group in spec.groups:
        inner = []
        for condition in group.conditions:
            inner.append(one(index, condition))
            index += 1
        if inner:
            clauses.append(_combine(inner, group.match).self_group())
    return _combine(clauses, spec.match) if clauses else true()

"""The advanced filter engine: whitelisted fields, a canonical URL encoding, and SQL compilation.

A filter is data: a `FilterSpec` of conditions `(field, operator, value)`, combined with AND
or OR, with one level of nested groups. It is parsed from a query string (the canonical
`f=` form or the builder form's parallel lists), validated against an entity's whitelist of
`FilterField`s, encoded back to one canonical query string, and compiled to one SQLAlchemy
boolean clause that callers add with `.where(...)` to any select, count, update or export.

Canonical URL grammar (repeatable `f`, order: top-level conditions, then group 1, 2, ...):

    f=<field>.<op>[.<value>]        split on the first two dots only; the value may hold dots
    f=<N>:<field>.<op>[.<value>]    a condition inside group N (1-based)
    match=any                       top-level combinator (omitted when "all", the default)
    gN=any                          group N's combinator (omitted when "all")

List values (in, notIn, between) are comma-separated; a literal comma is `\\,` and a
backslash `\\\\`. Single values are taken verbatim (no escaping).

Security: field names are looked up in the whitelist (never used as SQL); every value is
parsed to a Python type here and reaches SQL only as a bound parameter. The engine adds no
joins: related columns and tags compile to EXISTS (`has()` / `any()`), so counts are exact.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Numeric, and_, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from crm_web.errors import ValidationError

__all__ = [
    "Condition",
    "FieldType",
    "FilterField",
    "FilterSpec",
    "Group",
    "compile_filter",
    "describe_fields",
    "encode_filter",
    "parse_filter",
]

MAX_CONDITIONS = 20
MAX_GROUPS = 10
MAX_VALUE_LENGTH = 200  # per value, or per item of a list value
MAX_LIST_ITEMS = 50
MAX_RAW_LENGTH = 2000  # a whole raw `f` parameter, before it is split
LIKE_ESCAPE = "\\"
MATCHES = ("all", "any")


# --- the whitelist ------------------------------------------------------------------------


class FieldType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    MONEY = "money"
    DATE = "date"
    DATETIME = "datetime"
    UUID = "uuid"
    CHOICE = "choice"
    BOOLEAN = "boolean"
    TAG = "tag"


# eq=False: columns overload ==, so dataclass equality would build SQL instead of comparing.
@dataclass(frozen=True, eq=False)
class FilterField:
    """One filterable field: its column(s), type, and optionally the relationship it lives behind.

    - `columns`: one column, or several for a compound field (positive operators OR across
      them, negative ones AND: "name notContains x" means neither first nor last name does).
    - `via`: a relationship attribute (`Contact.primary_company`); the predicate becomes
      `via.has(...)` (or `.any(...)` for a collection). Negative operators compile to
      `NOT via.has(positive)`, so rows without a related row match them.
    - TAG: `via` is the tag collection (`Contact.tags`) and `columns` the tag's id.
    """

    label: str
    type: FieldType
    columns: tuple[Any, ...] = ()
    via: Any = None
    choices: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, label: str, *columns: Any, via: Any = None) -> FilterField:
        return cls(label, FieldType.TEXT, tuple(columns), via)

    @classmethod
    def number(cls, label: str, column: Any, *, via: Any = None) -> FilterField:
        return cls(label, FieldType.NUMBER, (column,), via)

    @classmethod
    def money(cls, label: str, column: Any, *, via: Any = None) -> FilterField:
        return cls(label, FieldType.MONEY, (column,), via)

    @classmethod
    def date(cls, label: str, column: Any, *, via: Any = None) -> FilterField:
        return cls(label, FieldType.DATE, (column,), via)

    @classmethod
    def datetime(cls, label: str, column: Any, *, via: Any = None) -> FilterField:
        return cls(label, FieldType.DATETIME, (column,), via)

    @classmethod
    def uuid(cls, label: str, column: Any, *, via: Any = None) -> FilterField:
        return cls(label, FieldType.UUID, (column,), via)

    @classmethod
    def choice(
        cls, label: str, column: Any, choices: Iterable[tuple[str, str] | str], *, via: Any = None
    ) -> FilterField:
        pairs = tuple((c, c) if isinstance(c, str) else (str(c[0]), str(c[1])) for c in choices)
        return cls(label, FieldType.CHOICE, (column,), via, pairs)

    @classmethod
    def boolean(cls, label: str, column: Any, *, via: Any = None) -> FilterField:
        return cls(label, FieldType.BOOLEAN, (column,), via)

    @classmethod
    def tag(cls, label: str, relationship: Any, id_column: Any = None) -> FilterField:
        """Tags: `relationship` is the collection (`Contact.tags`); values are tag ids."""
        return cls(label, FieldType.TAG, (id_column,) if id_column is not None else (), relationship)


# --- operators ------------------------------------------------------------------------------

# How an operator's value is written: none, one value, a list, a pair, or a relative range.
NONE, SINGLE, LIST, PAIR, RANGE = "none", "single", "list", "pair", "range"

OPERATOR_ARITY: dict[str, str] = {
    "equals": SINGLE,
    "notEquals": SINGLE,
    "contains": SINGLE,
    "notContains": SINGLE,
    "startsWith": SINGLE,
    "endsWith": SINGLE,
    "isEmpty": NONE,
    "isNotEmpty": NONE,
    "greaterThan": SINGLE,
    "greaterOrEqual": SINGLE,
    "lessThan": SINGLE,
    "lessOrEqual": SINGLE,
    "between": PAIR,
    "in": LIST,
    "notIn": LIST,
    "onDate": SINGLE,
    "before": SINGLE,
    "after": SINGLE,
    "inRange": RANGE,
    "isTrue": NONE,
    "isFalse": NONE,
}

OPERATOR_LABELS: dict[str, str] = {
    "equals": "is",
    "notEquals": "is not",
    "contains": "contains",
    "notContains": "does not contain",
    "startsWith": "starts with",
    "endsWith": "ends with",
    "isEmpty": "is empty",
    "isNotEmpty": "is not empty",
    "greaterThan": "is greater than",
    "greaterOrEqual": "is at least",
    "lessThan": "is less than",
    "lessOrEqual": "is at most",
    "between": "is between",
    "in": "is any of",
    "notIn": "is none of",
    "onDate": "is on",
    "before": "is before",
    "after": "is after",
    "inRange": "is in",
    "isTrue": "is yes",
    "isFalse": "is no",
}
TAG_OPERATOR_LABELS = {"in": "has any of", "notIn": "has none of", "isEmpty": "has no tags", "isNotEmpty": "has tags"}

_NUMERIC_OPS = (
    "equals",
    "notEquals",
    "greaterThan",
    "greaterOrEqual",
    "lessThan",
    "lessOrEqual",
    "between",
    "isEmpty",
    "isNotEmpty",
)
_DATE_OPS = ("onDate", "before", "after", "between", "inRange", "isEmpty", "isNotEmpty")

OPERATORS_BY_TYPE: dict[FieldType, tuple[str, ...]] = {
    FieldType.TEXT: (
        "equals",
        "notEquals",
        "contains",
        "notContains",
        "startsWith",
        "endsWith",
        "isEmpty",
        "isNotEmpty",
    ),
    FieldType.NUMBER: _NUMERIC_OPS,
    FieldType.MONEY: _NUMERIC_OPS,
    FieldType.DATE: _DATE_OPS,
    FieldType.DATETIME: _DATE_OPS,
    FieldType.UUID: ("equals", "notEquals", "in", "isEmpty", "isNotEmpty"),
    FieldType.CHOICE: ("equals", "notEquals", "in", "notIn"),
    FieldType.BOOLEAN: ("isTrue", "isFalse"),
    FieldType.TAG: ("in", "notIn", "isEmpty", "isNotEmpty"),
}

# A negative operator compiles as the negation of its positive twin, NULL-safely.
NEGATIONS = {
    "notEquals": "equals",
    "notContains": "contains",
    "notIn": "in",
    "isEmpty": "isNotEmpty",
    "isFalse": "isTrue",
}

RELATIVE_RANGES: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "thisWeek": "This week",
    "lastWeek": "Last week",
    "nextWeek": "Next week",
    "thisMonth": "This month",
    "lastMonth": "Last month",
    "nextMonth": "Next month",
    "last7Days": "Last 7 days",
    "last30Days": "Last 30 days",
    "next7Days": "Next 7 days",
    "next30Days": "Next 30 days",
    "thisYear": "This year",
}


# --- the spec -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None  # None, a scalar, a tuple (in/notIn/between) or a range name (inRange)


@dataclass(frozen=True)
class Group:
    conditions: tuple[Condition, ...]
    match: str = "all"


@dataclass(frozen=True)
class FilterSpec:
    conditions: tuple[Condition, ...] = ()
    groups: tuple[Group, ...] = ()
    match: str = "all"

    @property
    def is_empty(self) -> bool:
        return not self.conditions and not any(g.conditions for g in self.groups)

    def to_query_pairs(self) -> list[tuple[str, str]]:
        return encode_filter(self)

    def to_query_string(self) -> str:
        # ":" and "," are legal in a query string; leaving them readable keeps links readable.
        return urlencode(encode_filter(self), safe=":,")


# --- encoding -------------------------------------------------------------------------------


def _escape_item(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,")


def _format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _format_value(op: str, value: Any) -> str | None:
    arity = OPERATOR_ARITY.get(op, SINGLE)
    if arity == NONE or value is None:
        return None
    if arity in (LIST, PAIR):
        return ",".join(_escape_item(_format_scalar(v)) for v in value)
    return _format_scalar(value)


def _encode_condition(condition: Condition, group: int) -> str:
    prefix = f"{group}:" if group else ""
    raw = _format_value(condition.op, condition.value)
    return f"{prefix}{condition.field}.{condition.op}" + ("" if raw is None else f".{raw}")


def encode_filter(spec: FilterSpec) -> list[tuple[str, str]]:
    """The canonical query pairs: `match` (if any), top-level `f`s, grouped `f`s, then `gN`s."""
    pairs: list[tuple[str, str]] = []
    if spec.match != "all":
        pairs.append(("match", spec.match))
    pairs.extend(("f", _encode_condition(c, 0)) for c in spec.conditions)
    groups = [g for g in spec.groups if g.conditions]
    for number, group in enumerate(groups, start=1):
        pairs.extend(("f", _encode_condition(c, number)) for c in group.conditions)
    pairs.extend((f"g{n}", g.match) for n, g in enumerate(groups, start=1) if g.match != "all")
    return pairs


# --- parsing --------------------------------------------------------------------------------


class _ConditionError(Exception):
    """A problem with one condition; parse_filter names the condition and re-raises."""


@dataclass
class _Raw:
    position: int  # where it came from in the input
    group: int
    field: str
    op: str
    value: str | None  # None: no value part at all
    lenient_value: bool = False  # builder rows may carry a stale value for no-value operators
    error: str | None = None


def _q(text: str) -> str:
    """Quote user input for a message, cut short so an error never echoes a huge value."""
    return '"' + (text if len(text) <= 60 else text[:57] + "...") + '"'


def _getlist(args: Any, key: str) -> list[str]:
    if hasattr(args, "getlist"):
        values = args.getlist(key)
    else:
        value = args.get(key) if isinstance(args, Mapping) else None
        values = [] if value is None else [value] if isinstance(value, str) else list(value)
    for value in values:
        if not isinstance(value, str):
            raise ValidationError("The filter is malformed.", {key: f"{_q(key)} must be text."})
    return values


def _first(args: Any, key: str) -> str | None:
    values = _getlist(args, key)
    return values[0] if values else None


def _parse_group_number(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", text) or not 1 <= int(text) <= MAX_GROUPS:
        raise _ConditionError(f"{_q(text)} is not a valid group (use 1 to {MAX_GROUPS}).")
    return int(text)


def _split_f(position: int, raw: str) -> _Raw:
    head, _, rest = raw.partition(".")
    op, dot, value = rest.partition(".")
    item = _Raw(position, 0, head, op, value if dot else None)
    if ":" in head:
        group_text, _, item.field = head.partition(":")
        try:
            if ":" in item.field:
                raise _ConditionError("groups cannot be nested (one level only).")
            item.group = _parse_group_number(group_text)
        except _ConditionError as exc:
            item.error = str(exc)
    return item


def _collect_raw(args: Any) -> list[_Raw]:
    f_values = _getlist(args, "f")
    if f_values:
        if len(f_values) > MAX_CONDITIONS:
            _too_many(len(f_values))
        return [_split_f(i, raw) for i, raw in enumerate(f_values)]
    fields, ops, values, groups = (_getlist(args, k) for k in ("field", "op", "value", "group"))
    rows: list[_Raw] = []
    for i, field_name in enumerate(fields):
        if not field_name.strip():
            continue  # the builder's blank template row
        if len(rows) >= MAX_CONDITIONS:
            _too_many(len([f for f in fields if f.strip()]))
        op = ops[i] if i < len(ops) else ""
        value = values[i] if i < len(values) else ""
        group_text = groups[i].strip() if i < len(groups) else ""
        item = _Raw(len(rows), 0, field_name.strip(), op.strip(), value if value != "" else None, lenient_value=True)
        if group_text not in ("", "0"):
            try:
                item.group = _parse_group_number(group_text)
            except _ConditionError as exc:
                item.error = str(exc)
        rows.append(item)
    return rows


def _too_many(count: int) -> None:
    raise ValidationError(
        f"Filter condition {MAX_CONDITIONS + 1}: too many conditions ({count}; at most {MAX_CONDITIONS}).",
        {f"f[{MAX_CONDITIONS}]": f"At most {MAX_CONDITIONS} conditions."},
    )


def _check_text(text: str) -> str:
    if len(text) > MAX_VALUE_LENGTH:
        raise _ConditionError(f"the value is too long (at most {MAX_VALUE_LENGTH} characters).")
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise _ConditionError("the value contains characters that are not allowed.")
    return text


def _split_list(raw: str) -> list[str]:
    items, current, chars = [], [], iter(raw)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


_INT_RE = re.compile(r"-?[0-9]{1,18}")
_DECIMAL_RE = re.compile(r"-?[0-9]{1,18}\.[0-9]{1,6}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)


def _parse_number(text: str, money: bool) -> int | Decimal:
    text = text.strip()
    if _INT_RE.fullmatch(text):
        return Decimal(text) if money else int(text)
    if _DECIMAL_RE.fullmatch(text):
        return Decimal(text)
    raise _ConditionError(f"{_q(text)} is not {'an amount of money' if money else 'a number'}.")


def _parse_date(text: str) -> date:
    text = text.strip()
    try:
        if _DATE_RE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise _ConditionError(f"{_q(text)} is not a date (use YYYY-MM-DD).")


def _parse_date_or_datetime(text: str) -> date | datetime:
    text = text.strip()
    if _DATE_RE.fullmatch(text):
        return _parse_date(text)
    try:
        if _DATETIME_RE.fullmatch(text):
            value = datetime.fromisoformat(text.replace(" ", "T", 1))
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)  # naive means UTC
            return value.astimezone(UTC)
    except ValueError:
        pass
    raise _ConditionError(f"{_q(text)} is not a date or date-time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ).")


def _parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise _ConditionError(f"{_q(text)} is not a valid id.") from None


def _scalar_parser(ff: FilterField, op: str) -> Callable[[str], Any]:
    kind = ff.type
    if kind in (FieldType.NUMBER, FieldType.MONEY):
        return lambda t: _parse_number(t, kind is FieldType.MONEY)
    if kind is FieldType.DATE:
        return _parse_date
    if kind is FieldType.DATETIME:
        return _parse_date if op == "onDate" else _parse_date_or_datetime
    if kind in (FieldType.UUID, FieldType.TAG):
        return _parse_uuid
    if kind is FieldType.CHOICE:
        allowed = {value for value, _ in ff.choices}

        def parse_choice(text: str) -> str:
            if text not in allowed:
                raise _ConditionError(f"{_q(text)} is not one of the choices for {ff.label}.")
            return text

        return parse_choice
    return lambda t: t  # TEXT


def _parse_value(ff: FilterField, op: str, raw: str | None, lenient: bool) -> Any:
    arity = OPERATOR_ARITY[op]
    if arity == NONE:
        if raw not in (None, "") and not lenient:
            raise _ConditionError(f"{op} takes no value.")
        return None
    if raw is None or raw == "":
        raise _ConditionError("a value is required.")
    if len(raw) > MAX_RAW_LENGTH:
        raise _ConditionError(f"the value is too long (at most {MAX_RAW_LENGTH} characters).")
    if arity == RANGE:
        if raw not in RELATIVE_RANGES:
            raise _ConditionError(f"{_q(raw)} is not a known date range.")
        return raw
    parse = _scalar_parser(ff, op)
    if arity == SINGLE:
        return parse(_check_text(raw))
    items = _split_list(raw)
    if any(item == "" for item in items):
        raise _ConditionError("the list has an empty item.")
    if len(items) > MAX_LIST_ITEMS:
        raise _ConditionError(f"the list is too long (at most {MAX_LIST_ITEMS} items).")
    values = tuple(parse(_check_text(item)) for item in items)
    if arity == PAIR:
        if len(values) != 2:
            raise _ConditionError("between needs two values separated by a comma.")
        low, high = values
        if _sort_key(low) > _sort_key(high):
            raise _ConditionError("the first value of between must not be greater than the second.")
    return values


def _sort_key(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):  # a whole day, compared with date-times by its start
        return datetime.combine(value, time.min, tzinfo=UTC)
    return value


def _validate(raw: _Raw, fields: Mapping[str, FilterField]) -> Condition:
    if raw.error:
        raise _ConditionError(raw.error)
    ff = fields.get(raw.field)
    if not raw.field:
        raise _ConditionError("a field is required.")
    if ff is None:
        raise _ConditionError(f"{_q(raw.field)} is not a field you can filter on.")
    if not raw.op:
        raise _ConditionError("an operator is required.")
    if raw.op not in OPERATORS_BY_TYPE[ff.type]:
        raise _ConditionError(f"{_q(raw.op)} is not an operator for {ff.label} ({ff.type.value}).")
    return Condition(raw.field, raw.op, _parse_value(ff, raw.op, raw.value, raw.lenient_value))


def _parse_match(args: Any, key: str) -> str:
    value = _first(args, key)
    if value is None or value == "":
        return "all"
    if value not in MATCHES:
        raise ValidationError(f"The filter's {_q(key)} must be 'all' or 'any'.", {key: "Use 'all' or 'any'."})
    return value


def parse_filter(args: Any, fields: Mapping[str, FilterField]) -> FilterSpec:
    """Parse `request.args` (canonical `f=` form, else the builder's parallel lists) into a spec.

    Raises ValidationError naming the first offending condition (key `f[i]`, i its index in
    the canonical order: top-level conditions first, then each group's).
    """
    if not hasattr(args, "getlist") and not isinstance(args, Mapping):
        raise ValidationError("The filter is malformed.", {"f": "Expected query parameters."})
    raws = _collect_raw(args)
    match = _parse_match(args, "match")
    # Canonical order: top level first, then groups by number; stable within each.
    raws.sort(key=lambda r: (r.group, r.position))
    top: list[Condition] = []
    grouped: dict[int, list[Condition]] = {}
    for index, raw in enumerate(raws):
        try:
            condition = _validate(raw, fields)
        except _ConditionError as exc:
            shown = " ".join(part for part in (raw.field, raw.op, raw.value) if part)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            message = f"Filter condition {index + 1} ({_q(shown)}): {exc}"
            raise ValidationError(message, {f"f[{index}]": str(exc)}) from None
        (grouped.setdefault(raw.group, []) if raw.group else top).append(condition)
    groups = tuple(Group(tuple(grouped[n]), _parse_match(args, f"g{n}")) for n in sorted(grouped))
    return FilterSpec(tuple(top), groups, match)


# --- compiling ------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _numeric(value: Any) -> Any:
    # An integral Decimal stays exact; a fractional one is bound as NUMERIC (SQLite's driver
    # cannot bind Decimal against an INTEGER column's type).
    if isinstance(value, Decimal):
        return literal(value, Numeric(asdecimal=True))
    return value


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


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


def _date_bounds(ff: FilterField, start: date, end: date) -> tuple[Any, Any]:
    if ff.type is FieldType.DATETIME:
        return _day_start(start), _day_start(end)
    return start, end


def _lower_bound(ff: FilterField, column: Any, value: Any, strict: bool) -> ColumnElement[bool]:
    """column after value (strict) / from value on: a date covers its whole day."""
    if ff.type is FieldType.DATETIME and not isinstance(value, datetime):
        day = value + timedelta(days=1) if strict else value
        return column >= _day_start(day)
    return column > value if strict else column >= value


def _upper_bound(ff: FilterField, column: Any, value: Any, strict: bool) -> ColumnElement[bool]:
    if ff.type is FieldType.DATETIME and not isinstance(value, datetime):
        day = value if strict else value + timedelta(days=1)
        return column < _day_start(day)
    return column < value if strict else column <= value


def _positive(ff: FilterField, op: str, column: Any, value: Any, today: date) -> ColumnElement[bool]:
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
            start, end = _date_bounds(ff, value, value + timedelta(days=1))
            return and_(column >= start, column < end)
        if op == "before":
            return _upper_bound(ff, column, value, strict=True)
        if op == "after":
            return _lower_bound(ff, column, value, strict=True)
        if op == "between":
            return and_(
                _lower_bound(ff, column, value[0], strict=False), _upper_bound(ff, column, value[1], strict=False)
            )
        if op == "inRange":
            start, end = _date_bounds(ff, *_relative_range(value, today))
            return and_(column >= start, column < end)
    if op == "equals":  # UUID, CHOICE
        return column == value
    raise AssertionError(f"no compilation for {kind.value} {op}")  # unreachable after validation


def _columns(ff: FilterField) -> tuple[Any, ...]:
    if ff.columns:
        return ff.columns
    if ff.type is FieldType.TAG:  # default: the tag's primary key
        return tuple(ff.via.property.mapper.primary_key[:1])
    raise ValueError(f"filter field {_q(ff.label)} has no column")


def _exists(via: Any, criterion: ColumnElement[bool] | None) -> ColumnElement[bool]:
    if via.property.uselist:
        return via.any(criterion) if criterion is not None else via.any()
    return via.has(criterion) if criterion is not None else via.has()


def _compile_condition(condition: Condition, ff: FilterField, today: date) -> ColumnElement[bool]:
    op = condition.op
    positive_op = NEGATIONS.get(op, op)
    negate = positive_op != op
    columns = _columns(ff)
    if ff.type is FieldType.TAG:
        criterion = None if positive_op == "isNotEmpty" else columns[0].in_(list(condition.value))
        clause = _exists(ff.via, criterion)
        return not_(clause) if negate else clause
    if ff.via is not None:
        clause = _exists(ff.via, or_(*(_positive(ff, positive_op, c, condition.value, today) for c in columns)))
        # NOT EXISTS: a row without a related row matches every negative operator.
        return not_(clause) if negate else clause
    if not negate:
        return or_(*(_positive(ff, op, c, condition.value, today) for c in columns))
    if op == "isEmpty":
        return and_(*(or_(c.is_(None), c == "") if ff.type is FieldType.TEXT else c.is_(None) for c in columns))
    # NULL-safe: an empty column is "not equal to x" and "does not contain x".
    return and_(*(or_(c.is_(None), not_(_positive(ff, positive_op, c, condition.value, today))) for c in columns))


def _combine(clauses: Sequence[ColumnElement[bool]], match: str) -> ColumnElement[bool]:
    if len(clauses) == 1:
        return clauses[0]
    return or_(*clauses) if match == "any" else and_(*clauses)


def compile_filter(
    spec: FilterSpec, fields: Mapping[str, FilterField], *, now: datetime | None = None
) -> ColumnElement[bool] | None:
    """One boolean clause for `.where(...)`, or None for an empty spec. Adds no joins.

    `now` (aware; default: the current UTC time) anchors relative date ranges.
    """
    if spec.is_empty:
        return None
    moment = now if now is not None else datetime.now(UTC)
    today = (moment.astimezone(UTC) if moment.tzinfo else moment).date()

    def one(index: int, condition: Condition) -> ColumnElement[bool]:
        ff = fields.get(condition.field)
        if ff is None or condition.op not in OPERATORS_BY_TYPE[ff.type]:
            raise ValidationError(
                f"Filter condition {index + 1}: {condition.field}.{condition.op} is not allowed.",
                {f"f[{index}]": "Unknown field or operator."},
            )
        return _compile_condition(condition, ff, today)

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


# --- builder metadata -----------------------------------------------------------------------


def describe_fields(fields: Mapping[str, FilterField]) -> list[dict[str, Any]]:
    """JSON-able metadata for the filter builder: fields, their operators and choices."""
    described = []
    for name, ff in fields.items():
        labels = TAG_OPERATOR_LABELS if ff.type is FieldType.TAG else OPERATOR_LABELS
        entry: dict[str, Any] = {
            "name": name,
            "label": ff.label,
            "type": ff.type.value,
            "operators": [
                {"value": op, "label": labels[op], "arity": OPERATOR_ARITY[op]} for op in OPERATORS_BY_TYPE[ff.type]
            ],
            "choices": [{"value": v, "label": label} for v, label in ff.choices],
        }
        if ff.type in (FieldType.DATE, FieldType.DATETIME):
            entry["ranges"] = [{"value": k, "label": v} for k, v in RELATIVE_RANGES.items()]
        described.append(entry)
    return described

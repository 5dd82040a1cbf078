"""The filter's URL grammar: parsing query parameters into a FilterSpec, row by row, and encoding a
spec back to its one canonical form.

Canonical URL grammar (repeatable `f`, order: top-level conditions, then group 1, 2, ...):

    f=<field>.<op>[.<value>]        split on the first two dots only; the value may hold dots
    f=<N>:<field>.<op>[.<value>]    a condition inside group N (1-based)
    match=any                       top-level combinator (omitted when "all", the default)
    gN=any                          group N's combinator (omitted when "all")

List values (in, notIn, between) are comma-separated; a literal comma is `\\,` and a
backslash `\\\\`. Single values are taken verbatim (no escaping). The builder form posts the same
conditions as parallel lists (`field`, `op`, `value`, `group`).

Security: field names are looked up in the whitelist (never used as SQL); every value is parsed
to a Python type here and reaches SQL only as a bound parameter (compile.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from crm_web.column_limits import DATE_MAX, DATE_MIN, DATE_RANGE_MESSAGE, NumberLimits, column_limits
from crm_web.errors import ValidationError
from crm_web.filters.types import (
    LIST,
    MATCHES,
    MAX_CONDITIONS,
    MAX_GROUPS,
    MAX_LIST_ITEMS,
    MAX_RAW_LENGTH,
    MAX_ROWS_READ,
    MAX_VALUE_LENGTH,
    NONE,
    OPERATOR_ARITY,
    OPERATORS_BY_TYPE,
    PAIR,
    RANGE,
    RELATIVE_RANGES,
    SINGLE,
    Condition,
    FieldType,
    FilterField,
    FilterSpec,
    Group,
)

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


def _collect_raw(args: Any) -> tuple[list[_Raw], int]:
    """The rows as written (at most MAX_ROWS_READ of them) and how many there were."""
    f_values = _getlist(args, "f")
    if f_values:
        return [_split_f(i, raw) for i, raw in enumerate(f_values[:MAX_ROWS_READ])], len(f_values)
    fields, ops, values, groups = (_getlist(args, k) for k in ("field", "op", "value", "group"))
    rows: list[_Raw] = []
    for i, field_name in enumerate(fields):
        if not field_name.strip():
            continue  # the builder's blank template row
        if len(rows) >= MAX_ROWS_READ:
            break
        op = ops[i] if i < len(ops) else ""
        value = values[i] if i < len(values) else ""
        group_text = groups[i].strip() if i < len(groups) else ""
        item = _Raw(i, 0, field_name.strip(), op.strip(), value if value != "" else None, lenient_value=True)
        if group_text not in ("", "0"):
            try:
                item.group = _parse_group_number(group_text)
            except _ConditionError as exc:
                item.error = str(exc)
        rows.append(item)
    return rows, len([f for f in fields if f.strip()])


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


def _parse_number(text: str, money: bool, limits: NumberLimits | None = None) -> int | Decimal:
    text = text.strip()
    value: int | Decimal
    if _INT_RE.fullmatch(text):
        value = Decimal(text) if money else int(text)
    elif _DECIMAL_RE.fullmatch(text):
        value = Decimal(text)
    else:
        raise _ConditionError(f"{_q(text)} is not {'an amount of money' if money else 'a number'}.")
    # The column's type bounds what a comparison may bind (PostgreSQL casts the value to it).
    if limits is not None and limits.problem(value):
        raise _ConditionError(f"{_q(text)} is out of range: the value must be {limits.describe()}.")
    return value


def _in_calendar(day: date, text: str) -> None:
    if not DATE_MIN <= day <= DATE_MAX:
        raise _ConditionError(f"{_q(text)} is out of range: {DATE_RANGE_MESSAGE}")


def _parse_date(text: str) -> date:
    text = text.strip()
    try:
        day = date.fromisoformat(text) if _DATE_RE.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise _ConditionError(f"{_q(text)} is not a date (use YYYY-MM-DD).")
    _in_calendar(day, text)
    return day


def _parse_date_or_datetime(text: str) -> date | datetime:
    text = text.strip()
    if _DATE_RE.fullmatch(text):
        return _parse_date(text)
    try:
        if _DATETIME_RE.fullmatch(text):
            value = datetime.fromisoformat(text.replace(" ", "T", 1))
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)  # naive means UTC
            try:
                value = value.astimezone(UTC)
            except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
                raise _ConditionError(f"{_q(text)} is out of range: {DATE_RANGE_MESSAGE}") from None
            _in_calendar(value.date(), text)
            return value
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
        limits = column_limits(ff.columns[0]) if ff.columns else None
        return lambda t: _parse_number(t, kind is FieldType.MONEY, limits)
    if kind is FieldType.DATE:
        return _parse_date
    if kind is FieldType.DATETIME:
        return _parse_date if op == "onDate" else _parse_date_or_datetime
    if kind in (FieldType.UUID, FieldType.TAG):
        return _parse_uuid
    if kind in (FieldType.CHOICE, FieldType.MULTI):
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


@dataclass
class FilterRow:
    """One condition as it was written, with what it parsed to or why it did not."""

    group: int  # 0: top level
    field: str
    op: str
    value: str  # as typed ("" when there was none)
    condition: Condition | None = None
    error: str = ""


@dataclass
class ParsedFilter:
    """Every row of a filter with its own result, in canonical order (top level first, then each group's,
    which is also the builder's order), plus the combinators; `spec` when every row parsed."""

    rows: list[FilterRow] = field(default_factory=list)
    match: str = "all"
    group_matches: dict[int, str] = field(default_factory=dict)
    # The first problem as a ValidationError (its message names the condition), None when valid.
    problem: ValidationError | None = None
    # A problem not tied to one row (a bad `match` or `gN`).
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def spec(self) -> FilterSpec:
        if self.problem is not None:
            raise self.problem
        top = tuple(row.condition for row in self.rows if not row.group and row.condition is not None)
        numbers = sorted({row.group for row in self.rows if row.group})
        groups = tuple(
            Group(
                tuple(r.condition for r in self.rows if r.group == n and r.condition is not None),
                self.group_matches.get(n, "all"),
            )
            for n in numbers
        )
        return FilterSpec(top, groups, self.match)


def _match_or_error(args: Any, key: str, parsed: ParsedFilter) -> str:
    try:
        return _parse_match(args, key)
    except ValidationError as error:
        parsed.error = parsed.error or error.message
        parsed.problem = parsed.problem or error
        return "all"


def parse_rows(args: Any, fields: Mapping[str, FilterField]) -> ParsedFilter:
    """Parse `request.args` (canonical `f=` form, else the builder's parallel lists) row by row: each row
    gets its condition or its own error, so a form can show every row as typed with the error beside it."""
    if not hasattr(args, "getlist") and not isinstance(args, Mapping):
        raise ValidationError("The filter is malformed.", {"f": "Expected query parameters."})
    raws, count = _collect_raw(args)
    # Canonical order: top level first, then groups by number; stable within each.
    raws.sort(key=lambda r: (r.group, r.position))
    parsed = ParsedFilter(
        rows=[FilterRow(r.group, r.field, r.op, r.value or "") for r in raws],
    )
    if count > MAX_CONDITIONS:
        parsed.rows[MAX_CONDITIONS].error = f"At most {MAX_CONDITIONS} conditions."
        parsed.problem = ValidationError(
            f"Filter condition {MAX_CONDITIONS + 1}: too many conditions ({count}; at most {MAX_CONDITIONS}).",
            {f"f[{MAX_CONDITIONS}]": f"At most {MAX_CONDITIONS} conditions."},
        )
        return parsed
    parsed.match = _match_or_error(args, "match", parsed)
    for index, (raw, row) in enumerate(zip(raws, parsed.rows, strict=True)):
        try:
            row.condition = _validate(raw, fields)
        except _ConditionError as exc:
            row.error = str(exc)
            if parsed.problem is None:
                shown = " ".join(part for part in (raw.field, raw.op, raw.value) if part)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                message = f"Filter condition {index + 1} ({_q(shown)}): {exc}"
                parsed.problem = ValidationError(message, {f"f[{index}]": str(exc)})
    for number in sorted({row.group for row in parsed.rows if row.group}):
        parsed.group_matches[number] = _match_or_error(args, f"g{number}", parsed)
    return parsed


def parse_filter(args: Any, fields: Mapping[str, FilterField]) -> FilterSpec:
    """Parse `request.args` into a spec; raises ValidationError naming the first offending condition
    (key `f[i]`, i its index in the canonical order: top-level conditions first, then each group's)."""
    return parse_rows(args, fields).spec

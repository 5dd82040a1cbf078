"""The filter engine's vocabulary: field types, the whitelist entry `FilterField`, operators and their
arity, relative date ranges, and the parsed filter (`FilterSpec` of `Condition`s and `Group`s).

A filter is data: conditions `(field, operator, value)` combined with AND or OR, with one level of
nested groups. The URL grammar (grammar.py) parses and encodes it, compile.py turns it into one SQL
clause, describe.py tells the builder what it may offer.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_CONDITIONS = 20
MAX_ROWS_READ = 50  # rows read to show a too-long filter back as typed
MAX_GROUPS = 10
MAX_VALUE_LENGTH = 200  # per value, or per item of a list value
MAX_LIST_ITEMS = 50
MAX_RAW_LENGTH = 2000  # a whole raw `f` parameter, before it is split
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
    MULTI = "multi"  # a multi select custom field: a list of option ids


class _OneColumn:
    """A FilterField constructor for one column of one type (a descriptor, so it is called on the class)."""

    def __init__(self, kind: FieldType) -> None:
        self.kind = kind

    def __get__(self, instance: Any, owner: type[FilterField]) -> Callable[..., FilterField]:
        def make(label: str, column: Any, *, via: Any = None) -> FilterField:
            return owner(label, self.kind, (column,), via)

        return make


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
    - `computed`: instead of columns, an expression built when the filter compiles from the
      instant it is anchored at (values that depend on "now", like a deal's days in its stage).
    """

    label: str
    type: FieldType
    columns: tuple[Any, ...] = ()
    via: Any = None
    choices: tuple[tuple[str, str], ...] = ()
    computed: Callable[[dt.datetime], Any] | None = None
    # A custom select or multi select: (positive operator, value) -> the clause (custom_fields.py
    # builds it per engine).
    predicate: Callable[[str, Any], Any] | None = None

    # One-column fields of one type: F.number("Employees", Company.employee_count, via=...).
    number = _OneColumn(FieldType.NUMBER)
    money = _OneColumn(FieldType.MONEY)
    date = _OneColumn(FieldType.DATE)
    datetime = _OneColumn(FieldType.DATETIME)
    uuid = _OneColumn(FieldType.UUID)
    boolean = _OneColumn(FieldType.BOOLEAN)

    @classmethod
    def text(cls, label: str, *columns: Any, via: Any = None) -> FilterField:
        return cls(label, FieldType.TEXT, tuple(columns), via)

    @classmethod
    def choice(
        cls, label: str, column: Any, choices: Iterable[tuple[str, str] | str], *, via: Any = None
    ) -> FilterField:
        pairs = tuple((c, c) if isinstance(c, str) else (str(c[0]), str(c[1])) for c in choices)
        return cls(label, FieldType.CHOICE, (column,), via, pairs)

    @classmethod
    def computed_as(
        cls, label: str, kind: FieldType, expression: Callable[[dt.datetime], Any], *, via: Any = None
    ) -> FilterField:
        """A field whose SQL depends on the filter's "now" (`expression(now)`)."""
        return cls(label, kind, (), via, (), expression)

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
MULTI_OPERATOR_LABELS = {
    "in": "has any of",
    "notIn": "has none of",
    "isEmpty": "is empty",
    "isNotEmpty": "is not empty",
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
    FieldType.MULTI: ("in", "notIn", "isEmpty", "isNotEmpty"),
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

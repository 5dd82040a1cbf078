"""Custom fields: the definitions an organisation adds to contacts, companies, leads and deals, how
their values are stored, validated, shown, filtered and sorted.

Storage (docs/design.md, "Custom fields"): the definitions live on the organisation's row
(`organizations.custom_fields`, {entity: [field, ...]}), which every signed-in request loads with
the user, so a page learns its fields without a statement. The values live in the record's `custom`
column ({key: value}; JSONB on PostgreSQL, JSON text on SQLite). A value is read in SQL through
`value_expression`, the same expression a field's PostgreSQL index is built on when the field is
defined (services/custom_fields.py), so filters and sorts by it can use that index.

Stored forms: text, long text, URL, email: a string; number and money: a JSON number; date: the
ISO text "YYYY-MM-DD" (ordered like the dates); checkbox: true/false; single select: an option id;
multi select: a list of option ids; user: a user id as text. Option ids and field keys never
change, so renaming a field or an option keeps the data.
"""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Boolean, Numeric, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import literal_column
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from crm_web.filters.types import FieldType, FilterField

CUSTOM_ENTITIES = ("contact", "company", "lead", "deal")
MAX_FIELDS = 100  # live fields per entity per organisation
MAX_OPTIONS = 100
MAX_LABEL = 60
MAX_HELP = 200
MAX_TEXT = 255
MAX_LONG_TEXT = 5000
MAX_OPTION_LABEL = 60
MAX_MULTI = 50  # options chosen in one multi select value
NUMBER_LIMIT = Decimal("100000000000000")  # |value| below 10^14 (Numeric(18, 4))
COLUMN_PREFIX = "cf_"

FIELD_TYPES: dict[str, str] = {
    "text": "Text",
    "long_text": "Long text",
    "number": "Number",
    "money": "Money",
    "date": "Date",
    "checkbox": "Checkbox",
    "select": "Single select",
    "multi_select": "Multi select",
    "url": "URL",
    "email": "Email",
    "user": "User",
}
COLOURS: tuple[str, ...] = ("gray", "blue", "green", "yellow", "orange", "red", "purple")
TEXT_TYPES = frozenset({"text", "long_text", "url", "email"})
_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_OPTION_ID_RE = re.compile(r"[0-9a-f]{1,32}")  # new_id's, verbatim in the JSON text that holds it
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL_RE = re.compile(r"https?://[^\s]+", re.IGNORECASE)


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    colour: str = "gray"

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label, "colour": self.colour}


@dataclass(frozen=True)
class CustomField:
    """One definition. `key` is generated from the first label and never changes (it names the value
    in every record, in URLs: `f=cf_<key>.<op>`, `sort=cf_<key>`, `cols=cf_<key>`)."""

    id: str
    key: str
    label: str
    type: str
    required: bool = False
    help: str = ""
    position: int = 0
    options: tuple[Option, ...] = ()
    deleted_at: str | None = None  # ISO time: in the trash, its values kept

    @property
    def name(self) -> str:
        """The field's name in URLs, forms, history and columns."""
        return COLUMN_PREFIX + self.key

    @property
    def type_label(self) -> str:
        return FIELD_TYPES.get(self.type, self.type)

    @property
    def has_options(self) -> bool:
        return self.type in ("select", "multi_select")

    @property
    def option_rows(self) -> list[tuple[str, str, str]]:
        """(id, label, colour) of each option, as the settings form posts them."""
        return [(o.id, o.label, o.colour) for o in self.options]

    def option(self, option_id: Any) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustomField:
        return cls(
            id=str(data["id"]),
            key=str(data["key"]),
            label=str(data.get("label") or data["key"]),
            type=str(data.get("type") or "text"),
            required=bool(data.get("required")),
            help=str(data.get("help") or ""),
            position=int(data.get("position") or 0),
            options=tuple(
                Option(str(o["id"]), str(o.get("label") or ""), str(o.get("colour") or "gray"))
                for o in data.get("options") or ()
            ),
            deleted_at=data.get("deleted_at"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "label": self.label,
            "type": self.type,
            "required": self.required,
            "help": self.help,
            "position": self.position,
            "options": [o.to_json() for o in self.options],
            "deleted_at": self.deleted_at,
        }


def all_fields(schema: Mapping[str, Any] | None, entity_name: str) -> list[CustomField]:
    """Every definition of the entity (live and trashed), in form order."""
    raw = (schema or {}).get(entity_name) or []
    return sorted((CustomField.from_json(item) for item in raw), key=lambda f: (f.position, f.label.lower()))


def live_fields(schema: Mapping[str, Any] | None, entity_name: str) -> list[CustomField]:
    return [f for f in all_fields(schema, entity_name) if f.deleted_at is None]


def new_key(label: str, taken: Iterable[str]) -> str:
    """A key from the label ("Renewal date" -> renewal_date), unique among the entity's keys (trashed
    fields' keys included: they still name values)."""
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:32] or "field"
    if not base[0].isalpha():
        base = "f_" + base
    base = base[:32]
    used = set(taken)
    key, n = base, 2
    while key in used:
        key = f"{base}_{n}"
        n += 1
    assert _KEY_RE.fullmatch(key), key
    return key


def new_id() -> str:
    return secrets.token_hex(6)


# --- SQL ------------------------------------------------------------------------------------------


class IsoDate(TypeDecorator):
    """A date stored as ISO text in the JSON: compared and ordered as text, bound and read as a date."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.isoformat() if isinstance(value, date) else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        try:
            return date.fromisoformat(value) if isinstance(value, str) else value
        except ValueError:
            return None


class IdText(TypeDecorator):
    """A user id stored as text in the JSON: bound from a UUID."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return str(value) if isinstance(value, uuid.UUID) else value


class _Value(FunctionElement[Any]):
    """`custom ->> 'key'` (PostgreSQL) / `json_extract(custom, '$."key"')` (SQLite). The key is inlined
    (keys match [a-z][a-z0-9_]*), so the expression is the one the field's index is built on."""

    name = "custom_value"
    inherit_cache = True
    cast_to = ""  # PostgreSQL: the cast of the text value ("numeric", "boolean")
    json = False  # PostgreSQL: the JSON value (`->`), not its text

    def __init__(self, *clauses: Any, type_: Any) -> None:
        super().__init__(*clauses)
        self.type = type_  # binds and results go through it (IsoDate, IdText, Numeric, Boolean)


class _TextValue(_Value):
    inherit_cache = True


class _NumberValue(_Value):
    inherit_cache = True
    cast_to = "numeric"


class _BoolValue(_Value):
    inherit_cache = True
    cast_to = "boolean"


class _JsonValue(_Value):
    inherit_cache = True
    json = True


@compiles(_Value, "postgresql")
def _value_pg(element: _Value, compiler: Any, **kw: Any) -> str:
    column, key, _ = list(element.clauses)
    arrow = "->" if element.json else "->>"
    sql = f"({compiler.process(column, **kw)} {arrow} {compiler.process(key, **kw)})"
    return f"CAST({sql} AS {element.cast_to.upper()})" if element.cast_to else sql


@compiles(_Value)
def _value_sqlite(element: _Value, compiler: Any, **kw: Any) -> str:
    column, _, path = list(element.clauses)
    return f"json_extract({compiler.process(column, **kw)}, {compiler.process(path, **kw)})"


def _args(model: Any, key: str) -> tuple[Any, Any, Any]:
    if not _KEY_RE.fullmatch(key):
        raise ValueError(f"bad custom field key {key!r}")
    return model.__table__.c.custom, literal_column(f"'{key}'"), literal_column(f"'$.\"{key}\"'")


def value_expression(model: Any, cf: CustomField) -> ColumnElement[Any]:
    """The field's value of a row of `model`, typed for comparisons and ordering."""
    args = _args(model, cf.key)
    if cf.type in ("number", "money"):
        return _NumberValue(*args, type_=Numeric(18, 4, asdecimal=True))
    if cf.type == "checkbox":
        return _BoolValue(*args, type_=Boolean())
    if cf.type == "date":
        return _TextValue(*args, type_=IsoDate())
    if cf.type == "user":
        return _TextValue(*args, type_=IdText())
    if cf.type == "multi_select":
        return _JsonValue(*args, type_=String())
    return _TextValue(*args, type_=String())


def user_name_expression(model: Any, cf: CustomField, user_model: Any, dialect: str) -> ColumnElement[Any]:
    """The name of the user a field of type user names, on a row of `model`: a correlated subquery
    (a primary key lookup on PostgreSQL), so a select of the rows carries it without a statement of
    its own. The stored id is UUID text; SQLite keeps users.id as 32 hex digits without dashes."""
    from sqlalchemy import cast, func, select, type_coerce

    value = _TextValue(*_args(model, cf.key), type_=String())
    if dialect == "postgresql":
        # Cast the users' id, not the value: a value is never trusted to be a valid UUID in SQL.
        matches = cast(user_model.id, String) == value
    else:
        matches = type_coerce(user_model.id, String) == func.replace(value, "-", "")
    return (
        select(user_model.name).where(user_model.org_id == model.__table__.c.org_id, matches).limit(1).scalar_subquery()
    )


def index_expression(cf: CustomField) -> tuple[str, str]:
    """(method, expression) of the field's PostgreSQL index: the same SQL as value_expression."""
    text = f"(custom ->> '{cf.key}')"
    if cf.type in ("number", "money"):
        return "btree", f"(CAST({text} AS NUMERIC))"
    if cf.type == "checkbox":
        return "btree", f"(CAST({text} AS BOOLEAN))"
    if cf.type == "multi_select":
        return "gin", f"((custom -> '{cf.key}'))"
    return "btree", f"({text})"


def search_index_expression(cf: CustomField) -> str | None:
    """The expression of the field's PostgreSQL trigram index (gin_trgm_ops), for a text type: the
    global search's search_key(value_expression), `lower(custom ->> 'key')`, so each of its ILIKE
    conditions on the field is an index scan. None for the other types (the search skips them)."""
    if cf.type not in TEXT_TYPES:
        return None
    return f"(lower((custom ->> '{cf.key}')))"


class _HasAny(FunctionElement[bool]):
    """Whether a multi select value holds any of the bound option ids (or, without ids, any option)."""

    name = "custom_has_any"
    inherit_cache = True
    type = Boolean()


@compiles(_HasAny, "postgresql")
def _has_any_pg(element: _HasAny, compiler: Any, **kw: Any) -> str:
    column, key, _, *ids = list(element.clauses)
    value = f"({compiler.process(column, **kw)} -> {compiler.process(key, **kw)})"
    if not ids:
        return f"(jsonb_typeof({value}) = 'array' AND jsonb_array_length({value}) > 0)"
    # Containment of each id: the field's GIN index (jsonb_ops) serves `@>`.
    return (
        "(" + " OR ".join(f"{value} @> jsonb_build_array(CAST({compiler.process(i, **kw)} AS TEXT))" for i in ids) + ")"
    )


@compiles(_HasAny)
def _has_any_sqlite(element: _HasAny, compiler: Any, **kw: Any) -> str:
    column, _, path, *ids = list(element.clauses)
    source = f"json_each({compiler.process(column, **kw)}, {compiler.process(path, **kw)})"
    where = f" WHERE value IN ({', '.join(compiler.process(i, **kw) for i in ids)})" if ids else ""
    return f"EXISTS (SELECT 1 FROM {source}{where})"


class _ChoiceIs(FunctionElement[bool]):
    """Whether a select field's value is the bound option id. On SQLite the JSON text is first searched
    for the id (`instr`), which is far cheaper than parsing the document for each row a filtered
    list or count reads: an option id is hex, so it stands verbatim in the JSON of a row that holds it,
    and the parse then confirms it is this field's value. PostgreSQL compares the field's indexed
    expression, as any other condition on it."""

    name = "custom_choice_is"
    inherit_cache = True
    # Untyped: a Boolean one is compared with 1 on SQLite (no native boolean), which evaluates the
    # whole AND for every row.


@compiles(_ChoiceIs, "postgresql")
def _choice_is_pg(element: _ChoiceIs, compiler: Any, **kw: Any) -> str:
    column, key, _, option = list(element.clauses)
    return f"(({compiler.process(column, **kw)} ->> {compiler.process(key, **kw)}) = {compiler.process(option, **kw)})"


@compiles(_ChoiceIs)
def _choice_is_sqlite(element: _ChoiceIs, compiler: Any, **kw: Any) -> str:
    column, _, path, option = list(element.clauses)
    source, wanted = compiler.process(column, **kw), compiler.process(option, **kw)
    return f"(instr({source}, {wanted}) > 0 AND json_extract({source}, {compiler.process(path, **kw)}) = {wanted})"


def _choice_predicate(model: Any, cf: CustomField) -> Any:
    column = value_expression(model, cf)

    def predicate(op: str, value: Any) -> ColumnElement[bool]:
        from sqlalchemy import bindparam

        if op == "equals" and isinstance(value, str) and _OPTION_ID_RE.fullmatch(value):
            return _ChoiceIs(*_args(model, cf.key), bindparam(None, value, type_=String()))
        return column == value if op == "equals" else column.in_(list(value))

    return predicate


def _multi_predicate(model: Any, cf: CustomField) -> Any:
    def predicate(op: str, value: Any) -> ColumnElement[bool]:
        from sqlalchemy import bindparam

        ids = [bindparam(None, v, type_=String()) for v in value] if op == "in" else []
        # Bare, so the field's GIN index serves it; NULL (no value) where the engine says so.
        return _HasAny(*_args(model, cf.key), *ids)

    return predicate


def filter_field(model: Any, cf: CustomField) -> FilterField:
    """The field's entry in the filter whitelist, with the operators of its type."""
    column = value_expression(model, cf)
    kind = {
        "number": FieldType.NUMBER,
        "money": FieldType.MONEY,
        "date": FieldType.DATE,
        "checkbox": FieldType.BOOLEAN,
        "select": FieldType.CHOICE,
        "multi_select": FieldType.MULTI,
        "user": FieldType.UUID,
    }.get(cf.type, FieldType.TEXT)
    choices = tuple((o.id, o.label) for o in cf.options)
    if kind is FieldType.MULTI:
        return FilterField(cf.label, kind, (column,), None, choices, predicate=_multi_predicate(model, cf))
    if kind is FieldType.CHOICE:
        return FilterField(cf.label, kind, (column,), None, choices, predicate=_choice_predicate(model, cf))
    return FilterField(cf.label, kind, (column,), None, choices)


def filter_fields(model: Any, fields: Sequence[CustomField]) -> dict[str, FilterField]:
    return dict(_filter_fields(model, tuple(fields)))


def sort_fields(model: Any, fields: Sequence[CustomField]) -> dict[str, Any]:
    return dict(_sort_fields(model, tuple(fields)))


# Built once per model and set of definitions, not on every list request: a definition is immutable
# and its expressions depend on nothing else (no organisation, user or request), so a changed field
# is a different key. Callers get a copy of the mapping.
@functools.lru_cache(maxsize=256)
def _filter_fields(model: Any, fields: tuple[CustomField, ...]) -> dict[str, FilterField]:
    return {cf.name: filter_field(model, cf) for cf in fields}


@functools.lru_cache(maxsize=256)
def _sort_fields(model: Any, fields: tuple[CustomField, ...]) -> dict[str, Any]:
    return {cf.name: value_expression(model, cf) for cf in fields}


# --- values ---------------------------------------------------------------------------------------


class ValueProblem(ValueError):
    """A value the field cannot hold; the message is shown next to the field."""


def _number(text: str, money: bool) -> int | float | str:
    try:
        number = Decimal(text.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise ValueProblem("Enter an amount." if money else "Enter a number.") from None
    if not number.is_finite() or abs(number) >= NUMBER_LIMIT:
        raise ValueProblem("Enter a number below 100,000,000,000,000.")
    places = 2 if money else 4
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise ValueProblem(f"Use at most {places} decimal places.")
    # A JSON number: exact for integers; a decimal keeps its digits through float only up to 15 of them.
    return int(number) if number == number.to_integral_value() else float(number)


def clean_value(cf: CustomField, raw: Any, *, user_ids: Iterable[uuid.UUID] | None = None) -> Any:
    """The stored value of what was typed (a string, or a list for a multi select); None when empty.
    Raises ValueProblem with a message for the field."""
    if cf.type == "checkbox":
        if isinstance(raw, bool):
            return raw
        text = str(raw or "").strip().lower()
        if text in ("", "0", "false", "no", "off", "n"):
            return False if text else None
        if text in ("1", "true", "yes", "on", "y", "x"):
            return True
        raise ValueProblem("Use yes or no.")
    if cf.type == "multi_select":
        items = raw if isinstance(raw, (list, tuple)) else [s for s in str(raw or "").split(",")]
        chosen: list[str] = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            option = cf.option(text) or next((o for o in cf.options if o.label.lower() == text.lower()), None)
            if option is None:
                raise ValueProblem(f"{text[:60]!r} is not one of the options.")
            if option.id not in chosen:
                chosen.append(option.id)
        if len(chosen) > MAX_MULTI:
            raise ValueProblem(f"Choose at most {MAX_MULTI} options.")
        return chosen or None
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    if cf.type in TEXT_TYPES:
        limit = MAX_LONG_TEXT if cf.type == "long_text" else MAX_TEXT
        if len(text) > limit:
            raise ValueProblem(f"At most {limit} characters.")
        if "\x00" in text:
            raise ValueProblem("The text contains characters that are not allowed.")
        if cf.type == "email" and not _EMAIL_RE.fullmatch(text):
            raise ValueProblem("Enter an email address.")
        if cf.type == "url":
            if not re.match(r"[a-z]+://", text, re.IGNORECASE):
                text = "https://" + text
            if not _URL_RE.fullmatch(text):
                raise ValueProblem("Enter a web address.")
        return text
    if cf.type in ("number", "money"):
        return _number(text, cf.type == "money")
    if cf.type == "date":
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueProblem("Enter a date (YYYY-MM-DD).") from None
        if not 1900 <= day.year <= 2200:
            raise ValueProblem("Enter a date between 1900 and 2200.")
        return day.isoformat()
    if cf.type == "select":
        option = cf.option(text) or next((o for o in cf.options if o.label.lower() == text.lower()), None)
        if option is None:
            raise ValueProblem(f"{text[:60]!r} is not one of the options.")
        return option.id
    if cf.type == "user":
        try:
            user_id = uuid.UUID(text)
        except ValueError:
            raise ValueProblem("Choose a user of your organisation.") from None
        if user_ids is not None and user_id not in set(user_ids):
            raise ValueProblem("Choose a user of your organisation.")
        return str(user_id)
    raise ValueProblem("Unknown field type.")  # pragma: no cover - definitions are validated


def converts(value: Any, cf: CustomField) -> bool:
    """Whether a stored value (of another type) can be held by `cf`."""
    if value is None:
        return True
    try:
        if isinstance(value, list):
            if cf.type == "multi_select":
                clean_value(cf, value)
                return True
            return len(value) <= 1 and converts(value[0] if value else None, cf)
        if isinstance(value, bool):
            return cf.type in ("checkbox", "text", "long_text")
        clean_value(cf, value if not isinstance(value, float) else repr(value))
        return True
    except ValueProblem:
        return False


def convert(value: Any, cf: CustomField) -> Any:
    """A stored value of another type as `cf` holds it (call after `converts`)."""
    if value is None:
        return None
    if isinstance(value, list) and cf.type != "multi_select":
        value = value[0] if value else None
        if value is None:
            return None
    if isinstance(value, bool) and cf.type != "checkbox":
        return "yes" if value else "no"
    return clean_value(cf, value)


def display(cf: CustomField, value: Any, users: Mapping[Any, str] | None = None) -> str:
    """The value as a person reads it (lists, detail pages, CSV)."""
    if value is None or value == "" or value == []:
        return ""
    if cf.type == "checkbox":
        return "Yes" if value else "No"
    if cf.type == "select":
        option = cf.option(value)
        return option.label if option else ""
    if cf.type == "multi_select":
        return ", ".join(o.label for v in value if (o := cf.option(v)) is not None)
    if cf.type == "user":
        return (users or {}).get(str(value), "")
    if cf.type in ("number", "money") and isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


def colour_of(cf: CustomField, value: Any) -> str:
    option = cf.option(value) if cf.type == "select" else None
    return option.colour if option else ""


@dataclass
class FieldInput:
    """A definition as an admin typed it (the settings form)."""

    label: str = ""
    type: str = "text"
    required: bool = False
    help: str = ""
    position: int | None = None
    options: list[tuple[str, str, str]] = field(default_factory=list)  # (id or "", label, colour)

"""Advanced list filters: types.py (fields, operators, the spec), grammar.py (URL parsing row by row and
the canonical encoding), compile.py (one SQL clause), describe.py (what the builder offers). Each
entity's whitelist is declared in crm_web/entities.py."""

from crm_web.filters.compile import compile_filter
from crm_web.filters.describe import describe_fields
from crm_web.filters.grammar import FilterRow, ParsedFilter, encode_filter, parse_filter, parse_rows
from crm_web.filters.types import Condition, FieldType, FilterField, FilterSpec, Group

__all__ = [
    "Condition",
    "FieldType",
    "FilterField",
    "FilterRow",
    "FilterSpec",
    "Group",
    "ParsedFilter",
    "compile_filter",
    "describe_fields",
    "encode_filter",
    "parse_filter",
    "parse_rows",
]

"""Advanced list filters: a whitelist per entity, a canonical URL encoding, one SQL clause."""

from crm_web.filters.spec import (
    Condition,
    FieldType,
    FilterField,
    FilterSpec,
    Group,
    compile_filter,
    describe_fields,
    encode_filter,
    parse_filter,
)

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

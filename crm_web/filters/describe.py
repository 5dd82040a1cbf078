"""What the filter builder may offer, in words: each field's label, operators (with their labels and
arity) and choices, as JSON-able metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_web.filters.types import (
    MULTI_OPERATOR_LABELS,
    OPERATOR_ARITY,
    OPERATOR_LABELS,
    OPERATORS_BY_TYPE,
    RELATIVE_RANGES,
    TAG_OPERATOR_LABELS,
    FieldType,
    FilterField,
)


def describe_fields(fields: Mapping[str, FilterField]) -> list[dict[str, Any]]:
    """JSON-able metadata for the filter builder: fields, their operators and choices."""
    described = []
    for name, ff in fields.items():
        labels = {FieldType.TAG: TAG_OPERATOR_LABELS, FieldType.MULTI: MULTI_OPERATOR_LABELS}.get(
            ff.type, OPERATOR_LABELS
        )
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

"""The names a form's record pickers show (components/picker.html)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_web.services.base import Actor
from crm_web.services.pickers import PickerService


def picked_labels(
    actor: Actor, chosen: Mapping[str, tuple[str, Any]], *, known: Mapping[str, tuple[Any, str]] | None = None
) -> dict[str, str]:
    """{field: name} of the records the pickers hold ({field: (kind, id)}); one statement at most.
    `known`: {field: (id, name)} the page has loaded already (an edit form's own record's links)."""
    labels = {}
    missing = {}
    for field, (kind, value) in chosen.items():
        if value in (None, ""):
            continue
        loaded = (known or {}).get(field)
        if loaded is not None and str(loaded[0]) == str(value):
            labels[field] = loaded[1]
        else:
            missing[field] = (kind, value)
    return labels | (PickerService(actor).labels(missing) if missing else {})

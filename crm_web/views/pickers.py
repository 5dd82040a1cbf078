"""The names a form's record pickers show (components/picker.html)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_web.services.base import Actor
from crm_web.services.pickers import OWNER_SELECT_LIMIT, PickerService


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


def owner_options(service: Any) -> list[tuple[Any, str]] | None:
    """The owner select's options (one statement), or None when the team is too large for a select."""
    owners = service.owner_choices(limit=OWNER_SELECT_LIMIT + 1)
    return None if len(owners) > OWNER_SELECT_LIMIT else owners


def fit_owner_field(actor: Actor, field: Any, owners: list[tuple[Any, str]] | None) -> list[tuple[Any, str]]:
    """The owner field as a select of `owners`, or (a large team: `owners` None or over the limit) as
    a picker (components/forms.field renders it) naming the chosen owner; the service checks the id.
    Returns the options for the form's own set_choices."""
    if owners is not None and len(owners) <= OWNER_SELECT_LIMIT:
        return owners
    field.picker = "owner"
    field.validate_choice = False
    field.picked_label = PickerService(actor).labels({"owner": ("owner", field.data)}).get("owner", "")
    return []

"""Flask-WTF forms: the shape of input only; rules about the domain live in services."""

from collections.abc import Iterable
from typing import Any

from wtforms.fields.choices import SelectChoice


def select_choices(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """(value, label) pairs as SelectChoice objects: WTForms 3.3 deprecates tuple choices in field
    declarations (a DeprecationWarning, which fails the tests)."""
    return [SelectChoice(value, label) for value, label in pairs]

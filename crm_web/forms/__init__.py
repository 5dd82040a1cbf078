"""Flask-WTF forms: the shape of input only; rules about the domain live in services."""

from collections.abc import Iterable
from typing import Any

from wtforms import Form
from wtforms.fields.choices import SelectChoice

from crm_web.errors import ValidationError


def select_choices(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """(value, label) pairs as SelectChoice objects: WTForms 3.3 deprecates tuple choices in field
    declarations (a DeprecationWarning, which fails the tests)."""
    return [SelectChoice(value, label) for value, label in pairs]


def apply_errors(form: Form, error: ValidationError) -> None:
    """A service's field errors next to the form's fields; the rest (and a bare message) above the form."""
    for name, message in error.field_errors.items():
        if name in form._fields:
            form[name].errors = [*form[name].errors, message]
        else:
            form.form_errors.append(message)
    if not error.field_errors:
        form.form_errors.append(error.message)

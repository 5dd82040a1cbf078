"""Flask-WTF forms: the shape of input only; rules about the domain live in services."""

import uuid
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any, Self, TypeVar

from wtforms import Form, HiddenField
from wtforms.fields.choices import SelectChoice

from crm_web.errors import Conflict, ValidationError
from crm_web.models import utcnow
from crm_web.params import is_whole_number
from crm_web.services.conflicts import EditConflict

DAMAGED_VERSION = "This form is damaged or out of date. Reload the page to edit the latest version."


T = TypeVar("T")


def select_choices(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """(value, label) pairs as SelectChoice objects: WTForms 3.3 deprecates tuple choices in field
    declarations (a DeprecationWarning, which fails the tests)."""
    return [SelectChoice(value, label) for value, label in pairs]


def apply_errors(form: Form, error: ValidationError) -> None:
    """A service's field errors next to the form's fields; the rest (and a bare message) above the form."""
    for name, message in error.field_errors.items():
        if name.startswith("cf_"):  # a custom field's error, next to it (components/custom_fields.html)
            if not hasattr(form, "custom_errors"):
                form.custom_errors = {}
            form.custom_errors[name] = message
        elif name in form._fields:
            form[name].errors = [*form[name].errors, message]
        else:
            form.form_errors.append(message)
    if not error.field_errors:
        form.form_errors.append(error.message)


class PickerField(HiddenField):
    """A record picker's chosen id (templates/components/picker.html): a UUID or None; anything else
    is a form error. Whether the record exists in the organisation is the service's check."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        raw = str(valuelist[0]).strip() if valuelist else ""
        self.data = None
        if raw and raw != "None":
            try:
                self.data = uuid.UUID(raw)
            except ValueError:
                raise ValueError("Choose one of the suggestions.") from None

    def _value(self) -> str:
        return "" if self.data is None else str(self.data)


def submit(form: Any, action: Callable[[], T]) -> T | None:
    """On a valid POST: what `action` returns. None when the form was not posted or is invalid, or when
    the service refused the values (its ValidationError then shows on the form)."""
    if not form.validate_on_submit():
        return None
    try:
        return action()
    except ValidationError as error:
        apply_errors(form, error)
        return None


class VersionField(HiddenField):
    """The version of the record an edit form was rendered with. Missing or empty: None (the save is
    last-write-wins, as for old pages and API-like clients); anything but a whole number is a form error
    (422), and is rendered back as posted so a re-submit cannot skip the check."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        raw = str(valuelist[0]).strip() if valuelist else ""
        self.data = None
        if raw and not is_whole_number(raw, 9):
            raise ValueError(DAMAGED_VERSION)
        if raw:
            self.data = int(raw)

    def _value(self) -> str:
        if self.process_errors and self.raw_data:
            return str(self.raw_data[0])
        return str(self.data) if self.data is not None else ""


class VersionedForm:
    """Mixin of the full edit forms of versioned records (contacts, companies, leads, deals, activities):
    the form posts `version`; the service refuses a stale one (BaseService.check_version)."""

    version = VersionField()
    conflict: str | None = None

    @property
    def expected_version(self) -> int | None:
        return self.version.data

    def record_data(self, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The submitted values that belong to the record: not the CSRF token, not the version."""
        skipped = ("csrf_token", "version", *exclude)
        fields = self._fields  # type: ignore[attr-defined]  # mixed into a wtforms Form
        return {name: field.data for name, field in fields.items() if name not in skipped}

    def values(self) -> dict[str, Any]:
        """The service's keyword arguments: the record's values, an empty text or choice as None."""
        return {name: None if value == "" else value for name, value in self.record_data().items()}


class OwnedRecordForm(VersionedForm):
    """A record form with an owner picker (companies, leads)."""

    owner_id: Any  # the form's SelectField

    def set_choices(self, *, owners: list[tuple[Any, str]]) -> Self:
        self.owner_id.choices = select_choices([(None, "— unassigned —"), *owners])
        return self


def conflict_message(error: Conflict, *, today: date | None = None) -> str:
    """A refused save in words: who changed the record (or the field shown) and when, and for one field
    what it holds now."""
    if not isinstance(error, EditConflict):
        return error.message
    stale = error.stale
    what = f"this {stale.entity_label}"
    if stale.fields:
        what = f"the {stale.fields[0].replace('_', ' ')} of {what}"
    if stale.at is None:
        message = f"Someone else changed {what} after you opened it for editing."
    else:
        at = stale.at
        today = today or utcnow().date()
        when = at.strftime("%H:%M UTC") if at.date() == today else at.strftime("%d %b %Y %H:%M UTC")
        if stale.by_you:
            message = f"You changed {what} in another tab or window at {when}, after you opened it for editing."
        else:
            message = f"{stale.by_name or 'Someone else'} changed {what} at {when}, after you opened it for editing."
    if len(stale.fields) == 1:
        message += f" It is now “{stale.now}”." if stale.now not in (None, "") else " It is now empty."
    return message


def apply_conflict(form: VersionedForm, error: Conflict) -> None:
    """A stale save: the message goes above the form, which keeps the typed values and now carries the
    record's current version, so saving again overwrites the other change on purpose ("Save anyway")."""
    form.conflict = conflict_message(error)
    if error.current_version is not None:
        form.version.data = error.current_version

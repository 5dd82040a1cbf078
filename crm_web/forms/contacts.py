"""Contact forms: the shape of input only (the service validates against the organisation)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, SelectField, StringField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Email, Length, Optional

from crm_web.forms import PickerField, VersionedForm, email_domains
from crm_web.models import CONTACT_STATUSES, LEAD_SOURCES

email_domains.install()  # the Email validator checks each domain once


def _choices(pairs: Any) -> list[SelectChoice]:
    return [SelectChoice(str(value) if value is not None else "", label) for value, label in pairs]


def _uuid_or_none(value: Any) -> Any:
    import uuid

    if value in (None, "", "None"):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return value  # SelectField's choice check reports it


class ReachFields:
    """How to reach someone: the fields contacts, leads and companies share."""

    email = EmailField("Email", validators=[Optional(), Email(check_deliverability=False), Length(max=254)])
    phone = StringField("Phone", validators=[Optional(), Length(max=50)])


class PersonFields(ReachFields):
    """A person's name and job title, besides how to reach them: contacts and leads."""

    first_name = StringField("First name", validators=[DataRequired(), Length(max=100)])
    last_name = StringField("Last name", validators=[Optional(), Length(max=100)])
    title = StringField("Job title", validators=[Optional(), Length(max=150)])


class ContactForm(PersonFields, VersionedForm, FlaskForm):
    mobile = StringField("Mobile", validators=[Optional(), Length(max=50)])
    department = StringField("Department", validators=[Optional(), Length(max=150)])
    status = SelectField("Status", choices=_choices(CONTACT_STATUSES), default="prospect")
    lead_source = SelectField("Lead source", choices=_choices([("", "—"), *LEAD_SOURCES]), validators=[Optional()])
    primary_company_id = PickerField("Primary company")
    owner_id = SelectField("Owner", choices=[], coerce=_uuid_or_none, validate_choice=True)
    linkedin_url = URLField("LinkedIn", validators=[Optional(), URL(), Length(max=255)])
    birthday = DateField("Birthday", validators=[Optional()])
    city = StringField("City", validators=[Optional(), Length(max=120)])
    country = StringField("Country", validators=[Optional(), Length(max=120)])
    do_not_contact = BooleanField("Do not contact")
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=10000)])

    def set_choices(self, *, owners: list[tuple[Any, str]]) -> ContactForm:
        self.owner_id.choices = _choices([(None, "— unassigned —"), *owners])
        return self

    def values(self) -> dict[str, Any]:
        data = super().values()
        data["last_name"] = data.get("last_name") or ""
        return data

    def validate_field(self, name: str) -> bool:
        """Validate one field (inline edit): the others keep their stored values."""
        return self._fields[name].validate(self)

"""The activity form: shape of input only (the service checks owners and linked records)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField, TextAreaField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from crm_web.forms import VersionedForm
from crm_web.models import ACTIVITY_PRIORITIES, ACTIVITY_STATUSES, ACTIVITY_TYPES, Activity

LINK_FIELDS = ("contact_id", "company_id", "deal_id", "lead_id")


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(str(value), label) for value, label in pairs]


def _uuid_or_blank(form, field) -> None:
    if field.data:
        try:
            uuid.UUID(field.data)
        except ValueError:
            raise ValidationError("Not a valid record id.") from None


class ActivityForm(VersionedForm, FlaskForm):
    type = SelectField("Type", choices=_choices(ACTIVITY_TYPES), default="task")
    subject = StringField("Subject", validators=[DataRequired(), Length(max=255)])
    description = TextAreaField("Notes", validators=[Optional(), Length(max=10_000)])
    status = SelectField("Status", choices=_choices(ACTIVITY_STATUSES), default="pending")
    priority = SelectField("Priority", choices=_choices(ACTIVITY_PRIORITIES), default="medium")
    due_date = DateField("Due date", validators=[Optional()])
    due_time = TimeField("Due time", validators=[Optional()])
    duration_minutes = IntegerField("Duration (minutes)", validators=[Optional(), NumberRange(min=0, max=24 * 60)])
    owner_id = SelectField("Owner", choices=[], validate_choice=True)
    contact_id = HiddenField("Contact", validators=[_uuid_or_blank])
    company_id = HiddenField("Company", validators=[_uuid_or_blank])
    deal_id = HiddenField("Deal", validators=[_uuid_or_blank])
    lead_id = HiddenField("Lead", validators=[_uuid_or_blank])

    def set_owner_choices(self, choices: list[tuple[uuid.UUID, str]]) -> None:
        self.owner_id.choices = _choices([("", "— Nobody —"), *choices])

    def fill_from(self, activity: Activity) -> None:
        """Prefill an edit form (GET)."""
        for name in ("type", "subject", "description", "status", "priority", "duration_minutes"):
            getattr(self, name).data = getattr(activity, name)
        if activity.due_at is not None:
            self.due_date.data = activity.due_at.date()
            self.due_time.data = activity.due_at.time().replace(tzinfo=None)
        self.owner_id.data = str(activity.owner_id) if activity.owner_id else ""
        self.version.data = activity.version
        for name in LINK_FIELDS:
            value = getattr(activity, name)
            getattr(self, name).data = str(value) if value else ""

    def values(self) -> dict[str, Any]:
        """The validated input as service keyword arguments (due date + time -> one UTC datetime)."""
        due_at = None
        if self.due_date.data is not None:
            due_at = datetime.combine(self.due_date.data, self.due_time.data or time(9, 0), tzinfo=UTC)
        values: dict[str, Any] = {
            "type": self.type.data,
            "subject": self.subject.data,
            "description": self.description.data or None,
            "status": self.status.data,
            "priority": self.priority.data,
            "due_at": due_at,
            "duration_minutes": self.duration_minutes.data,
            "owner_id": uuid.UUID(self.owner_id.data) if self.owner_id.data else None,
        }
        for name in LINK_FIELDS:
            raw = getattr(self, name).data
            values[name] = uuid.UUID(raw) if raw else None
        return values

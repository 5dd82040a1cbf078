"""Lead forms: create/edit, one-click status and conversion (shape of input only)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from crm_web.column_limits import ColumnRange
from crm_web.forms import OwnedRecordForm, select_choices
from crm_web.forms.contacts import PersonFields, _uuid_or_none
from crm_web.models import LEAD_SOURCES, LEAD_STATUSES, Deal, Lead

MANUAL_STATUS_CHOICES = [(value, label) for value, label in LEAD_STATUSES if value != "converted"]


class LeadForm(PersonFields, OwnedRecordForm, FlaskForm):
    company_name = StringField("Company", validators=[Optional(), Length(max=200)])
    website = StringField("Website", validators=[Optional(), Length(max=255)])
    source = SelectField("Source", choices=select_choices([("", "—"), *LEAD_SOURCES]), validators=[Optional()])
    score = IntegerField("Score (0-100)", default=0, validators=[Optional(), ColumnRange(Lead.score, min=0, max=100)])
    estimated_value = DecimalField(
        "Estimated value", places=2, validators=[Optional(), ColumnRange(Lead.estimated_value, min=0)]
    )
    owner_id = SelectField("Owner", choices=[], coerce=_uuid_or_none, validate_choice=True)
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=10000)])

    def values(self) -> dict[str, Any]:
        data = super().values()
        data["last_name"] = data.get("last_name") or ""
        data["score"] = data.get("score") or 0
        return data


class LeadStatusForm(FlaskForm):
    status = SelectField("Status", choices=select_choices(MANUAL_STATUS_CHOICES))


class ConvertLeadForm(FlaskForm):
    create_deal = BooleanField("Create a deal in the default pipeline", default=True)
    deal_name = StringField("Deal name", validators=[Optional(), Length(max=200)])
    deal_value = DecimalField("Deal value", places=2, validators=[Optional(), ColumnRange(Deal.value, min=0)])

    def values(self) -> dict[str, Any]:
        return {
            "create_deal": bool(self.create_deal.data),
            "deal_name": self.deal_name.data or None,
            "deal_value": self.deal_value.data,
        }

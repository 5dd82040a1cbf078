"""Deal forms: create/edit (stage choices grouped by pipeline) and the lost reason."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from crm_web.column_limits import ColumnRange
from crm_web.forms import PickerField, VersionedForm, select_choices
from crm_web.forms.pipelines import coerce_uuid
from crm_web.models import CURRENCIES, LEAD_SOURCES, Deal


class DealForm(VersionedForm, FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    value = DecimalField("Value", places=2, default=0, validators=[Optional(), ColumnRange(Deal.value, min=0)])
    currency = SelectField("Currency", choices=select_choices((c, c) for c in CURRENCIES), default="USD")
    stage_id = SelectField("Stage", coerce=coerce_uuid, validators=[DataRequired(message="Choose a stage.")])
    probability = IntegerField(
        "Probability (%)",
        validators=[Optional(), NumberRange(0, 100)],
        description="Leave empty to follow the stage's probability.",
    )
    expected_close_date = DateField("Expected close", validators=[Optional()])
    company_id = PickerField("Company")
    contact_id = PickerField("Contact")
    owner_id = SelectField("Owner", coerce=coerce_uuid, validate_choice=True)
    source = SelectField("Source", choices=select_choices([("", "—"), *LEAD_SOURCES]), default="")
    lost_reason = StringField("Lost reason", validators=[Optional(), Length(max=255)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=10_000)])

    def set_choices(self, choices) -> None:
        """Selects from DealService.form_choices(): stages grouped by pipeline, owners (the company and
        contact are pickers)."""
        self.stage_id.choices = {p.name: [(str(s.id), s.name) for s in p.stages] for p in choices.pipelines}
        self.owner_id.choices = [("", "—"), *[(str(i), n) for i, n in choices.owners]]

    def values(self) -> dict:
        data = self.record_data(exclude=("stage_id",))
        data["source"] = data.get("source") or None
        data["lost_reason"] = (data.get("lost_reason") or "").strip() or None
        if data.get("value") is None:
            data["value"] = 0
        return data


class LostForm(FlaskForm):
    lost_reason = StringField("Lost reason", validators=[Optional(), Length(max=255)])

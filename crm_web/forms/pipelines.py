"""Pipeline settings forms: pipeline name/currency/default, stage fields, and where deals go on delete."""

from __future__ import annotations

import uuid
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from crm_web.forms import select_choices
from crm_web.models import CURRENCIES


def coerce_uuid(value: Any) -> uuid.UUID | None:
    """Select values are UUID strings; "" means none. A junk value fails the choice check."""
    if value in (None, "", "None"):
        return None
    if isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


class PipelineForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    currency = SelectField("Currency", choices=select_choices((c, c) for c in CURRENCIES), default="USD")
    is_default = BooleanField("Default pipeline (the board opens on it)")


class StageForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    probability = IntegerField("Probability (%)", default=0, validators=[InputRequired(), NumberRange(0, 100)])
    is_won = BooleanField("Won stage (deals entering it are won)")
    is_lost = BooleanField("Lost stage (deals entering it are lost)")
    rotting_days = IntegerField("Rotting after (days)", validators=[Optional(), NumberRange(1, 3650)])


class MoveDealsForm(FlaskForm):
    """Deleting a stage or pipeline that holds deals: the stage they move to."""

    move_to_stage_id = SelectField("Move its deals to", coerce=coerce_uuid, validate_choice=True)

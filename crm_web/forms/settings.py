"""Settings forms (team, organisation, tags): the shape of input only; the rules are in the services."""

from __future__ import annotations

import functools
import zoneinfo

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, PasswordField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from crm_web.forms import select_choices
from crm_web.forms.pipelines import coerce_uuid
from crm_web.models import CURRENCIES
from crm_web.passwords import MAX_LENGTH
from crm_web.services.users import ROLES


@functools.cache
def time_zones() -> list[str]:
    return sorted(zone for zone in zoneinfo.available_timezones() if "/" in zone or zone == "UTC")


class NewUserForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=select_choices(ROLES), default="sales")
    access = RadioField(
        "How they get in",
        choices=select_choices(
            [
                ("invite", "An invitation link that I send them (they choose their password)"),
                ("password", "A password I set now (they must change it when they first sign in)"),
            ]
        ),
        default="invite",
    )
    password = PasswordField("Initial password", validators=[Optional(), Length(max=MAX_LENGTH)])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=select_choices(ROLES))


class DeactivateForm(FlaskForm):
    reassign_to = SelectField("Hand their open work to", coerce=coerce_uuid, validate_choice=True)


class OrganisationForm(FlaskForm):
    name = StringField("Organisation name", validators=[DataRequired(), Length(max=200)])
    default_currency = SelectField("Default currency", choices=select_choices((c, c) for c in CURRENCIES))
    time_zone = SelectField("Time zone")
    trash_retention_days = IntegerField(
        "Keep deleted records in the trash for (days)", validators=[Optional(), NumberRange(1, 3650)]
    )
    sales_can_import = BooleanField("Sales users may import CSV files (into their own ownership)")
    sales_can_publish_views = BooleanField("Sales users may publish saved views to the whole organisation")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_zone.choices = [(zone, zone.replace("_", " ")) for zone in time_zones()]


class TagForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=60)])
    color = StringField("Colour", validators=[DataRequired(), Length(max=7)])


class MergeTagForm(FlaskForm):
    into = SelectField("Merge into", coerce=coerce_uuid, validate_choice=True)

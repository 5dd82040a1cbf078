"""Company form: the shape of input only (the service checks the owner against the organisation)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from crm_web.column_limits import ColumnRange
from crm_web.forms import OwnedRecordForm, select_choices
from crm_web.forms.contacts import ReachFields, _uuid_or_none
from crm_web.models import COMPANY_SIZES, Company


class CompanyForm(ReachFields, OwnedRecordForm, FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    website = StringField("Website", validators=[Optional(), Length(max=255)])
    industry = StringField("Industry", validators=[Optional(), Length(max=100)])
    size = SelectField(
        "Size", choices=select_choices([("", "—"), *[(s, s) for s in COMPANY_SIZES]]), validators=[Optional()]
    )
    employee_count = IntegerField(
        "Employees", validators=[Optional(), ColumnRange(Company.employee_count, min=0, max=10_000_000)]
    )
    annual_revenue = DecimalField(
        "Annual revenue", places=2, validators=[Optional(), ColumnRange(Company.annual_revenue, min=0)]
    )
    owner_id = SelectField("Owner", choices=[], coerce=_uuid_or_none, validate_choice=True)
    street = StringField("Street", validators=[Optional(), Length(max=255)])
    city = StringField("City", validators=[Optional(), Length(max=120)])
    state = StringField("State / region", validators=[Optional(), Length(max=120)])
    postal_code = StringField("Postal code", validators=[Optional(), Length(max=20)])
    country = StringField("Country", validators=[Optional(), Length(max=120)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=10000)])

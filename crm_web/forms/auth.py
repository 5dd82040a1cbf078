"""Sign-in, password and account forms: the shape of input only (the policy is crm_web/passwords.py)."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from crm_web.passwords import MAX_LENGTH, MIN_LENGTH

NEW_PASSWORD_HELP = (
    f"At least {MIN_LENGTH} characters; not a common password, not your email. A few unrelated words work well."
)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    remember = BooleanField("Keep me signed in")


class SetPasswordForm(FlaskForm):
    """An invitation or reset link."""

    password = PasswordField("New password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    confirm_password = PasswordField("Repeat the new password", validators=[DataRequired(), Length(max=MAX_LENGTH)])


class ProfileForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=MAX_LENGTH)])
    confirm_password = PasswordField("Repeat the new password", validators=[DataRequired(), Length(max=MAX_LENGTH)])

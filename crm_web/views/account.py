"""My account (every user): name, password (the current one required), and ending sessions."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user

from crm_web.auth import renew_session
from crm_web.errors import ValidationError
from crm_web.forms import apply_errors
from crm_web.forms.auth import NEW_PASSWORD_HELP, ChangePasswordForm, ProfileForm
from crm_web.models import NOTIFICATION_KINDS
from crm_web.rendering import render_page
from crm_web.services.users import AccountService

bp = Blueprint("account", __name__)


def _page(*, profile: ProfileForm | None = None, password: ChangePasswordForm | None = None, status: int = 200):
    return render_page(
        "account/index.html",
        profile=profile or ProfileForm(data={"name": current_user.name}),
        password=password or ChangePasswordForm(),
        password_help=NEW_PASSWORD_HELP,
        notification_kinds=NOTIFICATION_KINDS,
        title="My account",
        status=status,
    )


@bp.get("/account")
def index():
    return _page()


@bp.post("/account")
def update_profile():
    form = ProfileForm()
    if form.validate_on_submit():
        try:
            AccountService(current_user).update_profile(name=form.name.data)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            flash("Your name is saved.")
            return redirect(url_for("account.index"), 303)
    return _page(profile=form, status=422)


@bp.post("/account/password")
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            user = AccountService(current_user).change_password(
                current=form.current_password.data, new=form.new_password.data, confirm=form.confirm_password.data
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            renew_session(user)
            flash("Your password is changed. You were signed out everywhere else.")
            return redirect(url_for("account.index"), 303)
    return _page(password=form, status=422)


@bp.post("/account/sessions")
def sign_out_everywhere():
    """Sign out of every other browser and device; this one stays signed in."""
    user = AccountService(current_user).sign_out_everywhere(keep_this_session=True)
    renew_session(user)
    flash("You were signed out on every other browser and device.")
    return redirect(url_for("account.index"), 303)

"""Sign in, sign out, and the one-time links that let a user choose a password."""

from __future__ import annotations

import math
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import current_user, logout_user

from crm_web.auth import public, start_session
from crm_web.errors import NotFound, ValidationError
from crm_web.extensions import limiter
from crm_web.forms import apply_errors
from crm_web.forms.auth import LoginForm, SetPasswordForm
from crm_web.services import accounts, users

bp = Blueprint("auth", __name__)

WRONG_CREDENTIALS = 422  # the status of a failed sign-in: the only answer the limits count


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after login."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("dashboard.index")


def _account_key() -> str:
    """The per-account limit's key: the email as the sign-in compares it (empty: no account limit)."""
    return accounts.normalise_email(request.form.get("email"))[:254]


def _failed(response: Response) -> bool:
    return response.status_code == WRONG_CREDENTIALS


def _blocked(what: str):
    def on_breach(limit: RequestLimit) -> Response:
        minutes = max(1, math.ceil((limit.reset_at - time.time()) / 60))
        message = f"Too many sign-in attempts {what}. Wait {minutes} minute{'s' if minutes != 1 else ''} and try again."
        return make_response(render_template("auth/login.html", form=LoginForm(), blocked=message), 429)

    return on_breach


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT"],
    key_func=get_remote_address,
    methods=["POST"],
    scope="login-address",
    deduct_when=_failed,
    on_breach=_blocked("from your address"),
)
@limiter.limit(
    lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"],
    key_func=_account_key,
    methods=["POST"],
    scope="login-account",
    deduct_when=_failed,
    on_breach=_blocked("for this account"),
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(email=form.email.data, password=form.password.data)
        if user is not None:
            start_session(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")), code=303)
        form.password.errors.append("Wrong email or password.")
    status = WRONG_CREDENTIALS if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    users.sign_out(current_user.id)
    # Clear first: logout_user() leaves the marker that makes Flask-Login delete the remember cookie.
    session.clear()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/set-password/<token>", methods=["GET", "POST"], endpoint="set_password")
@public
def set_password(token: str):
    """An invitation or reset link: choose a password, then land on the dashboard, signed in."""
    found = users.find_link(token)
    if found is None:
        raise NotFound("This link is invalid, was already used or has expired. Ask your administrator for a new one.")
    link, user = found
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            user = users.use_link(token, password=form.password.data, confirm=form.confirm_password.data)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            start_session(user)
            flash(f"Welcome, {user.name}: your password is set.", "info")
            return redirect(url_for("dashboard.index"), code=303)
    status = 422 if form.errors else 200
    return render_template("auth/set_password.html", form=form, link=link, user=user), status

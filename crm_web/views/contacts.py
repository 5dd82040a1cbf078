"""Contacts (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("contacts", __name__)


@bp.route("/contacts")
def index():
    return render_template("placeholder.html", title="Contacts")

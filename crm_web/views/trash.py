"""Trash (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("trash", __name__)


@bp.route("/trash")
def index():
    return render_template("placeholder.html", title="Trash")

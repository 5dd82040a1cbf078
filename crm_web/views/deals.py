"""Deals (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("deals", __name__)


@bp.route("/deals")
def index():
    return render_template("placeholder.html", title="Deals")

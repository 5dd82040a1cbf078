"""Leads (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("leads", __name__)


@bp.route("/leads")
def index():
    return render_template("placeholder.html", title="Leads")

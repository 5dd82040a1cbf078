"""Pipelines (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("pipelines", __name__)


@bp.route("/pipelines")
def index():
    return render_template("placeholder.html", title="Pipelines")

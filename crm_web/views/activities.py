"""Activities (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("activities", __name__)


@bp.route("/activities")
def index():
    return render_template("placeholder.html", title="Activities")

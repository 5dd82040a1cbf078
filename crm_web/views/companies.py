"""Companies (placeholder until its feature lands)."""

from flask import Blueprint, render_template

bp = Blueprint("companies", __name__)


@bp.route("/companies")
def index():
    return render_template("placeholder.html", title="Companies")

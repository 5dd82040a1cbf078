"""My day (/my-day): the signed-in user's activities due today or overdue, deals rotting or closing this
week and records recently assigned to them (services/my_day.py). Sales staff also land on it at `/`
(views/dashboard.py)."""

from __future__ import annotations

from flask import Blueprint, Response
from flask_login import current_user

from crm_web.rendering import render_page
from crm_web.services.base import Actor
from crm_web.services.my_day import MyDayService

bp = Blueprint("my_day", __name__)


@bp.get("/my-day")
def index():
    return my_day_page()


def my_day_page() -> Response:
    day = MyDayService(Actor.of(current_user)).my_day()
    # nav_section: the main navigation marks My day, also when it is shown at `/`.
    return render_page("my_day/index.html", block="my_day", day=day, title="My day", nav_section="my_day")

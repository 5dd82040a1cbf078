"""Real Chromium: drag an activity to another day on the calendar, then Undo puts it back."""

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _cell_of(page, activity_id: str) -> str:
    return page.locator(f'[data-activity-id="{activity_id}"]').evaluate(
        "el => el.closest('[data-calendar-drop]').getAttribute('data-date')"
    )


def test_drag_an_activity_to_another_day_and_undo(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.goto(f"{live_server}/activities/calendar?mode=month")
    today = page.locator(".calendar-day.is-today").get_attribute("data-day")

    # An activity of the manager's own, due today at noon (UTC; the form's time).
    page.goto(f"{live_server}/activities/new")
    page.fill("input[name=subject]", "Calendar drag call")
    page.fill("input[name=due_date]", today)
    page.fill("input[name=due_time]", "12:00")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/activities")) as created:
        page.locator("form:has(input[name=subject]) button[type=submit]").first.click()
    assert created.value.status in (200, 303)

    page.goto(f"{live_server}/activities/calendar?mode=month&date={today}")
    item = page.locator(".calendar-item", has_text="Calendar drag call")
    activity_id = item.get_attribute("data-activity-id")
    start = _cell_of(page, activity_id)
    days = page.locator("[data-calendar-drop]")
    dates = [d.get_attribute("data-date") for d in days.all()]
    target = dates[dates.index(start) + 1] if dates.index(start) + 1 < len(dates) else dates[dates.index(start) - 1]

    grab = item.bounding_box()
    drop = page.locator(f'[data-calendar-drop][data-date="{target}"]').bounding_box()
    with page.expect_response(re.compile(r"/activities/[0-9a-f-]+/reschedule")) as moved:
        page.mouse.move(grab["x"] + 5, grab["y"] + 5)
        page.mouse.down()
        page.mouse.move(grab["x"] + 20, grab["y"] + 20, steps=5)
        page.mouse.move(drop["x"] + drop["width"] / 2, drop["y"] + drop["height"] / 2, steps=15)
        page.mouse.up()
    assert moved.value.status == 200
    page.wait_for_function(
        "([id, day]) => { const el = document.querySelector(`[data-activity-id='${id}']`);"
        " return el && el.closest('[data-calendar-drop]').getAttribute('data-date') === day; }",
        arg=[activity_id, target],
    )
    toast = page.locator(".toast", has_text="Calendar drag call")
    with page.expect_response(re.compile(r"/activities/[0-9a-f-]+/reschedule")) as undone:
        toast.locator(".btn-undo").click()
    assert undone.value.status == 200
    page.wait_for_function(
        "([id, day]) => { const el = document.querySelector(`[data-activity-id='${id}']`);"
        " return el && el.closest('[data-calendar-drop]').getAttribute('data-date') === day; }",
        arg=[activity_id, start],
    )
    page.reload()
    assert _cell_of(page, activity_id) == start
    assert page_errors == []

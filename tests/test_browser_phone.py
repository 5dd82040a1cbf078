"""The main flows on a phone (390x844, touch), in real Chromium, as a sales user would walk them:
find a contact, log an activity for it, check the day's tasks and tick one off, move a deal with
"Move to…". Each step's screenshot goes to test-artifacts/screenshots/ (README, "Tests"), which CI
keeps as artifacts. Targets a finger taps are touch-sized; the navigation shows all its items; the
board says which column is in view; the dashboard's charts keep readable labels, also in dark mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Contact, Deal, Notification, User

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
# A fingertip: smaller targets are easy to miss on a phone.
TOUCH = 32


@pytest.fixture
def phone(browser, live_server):
    """phone(role, dark=False): a signed-in page on a 390x844 touch screen, with its console errors."""
    contexts = []

    def _open(role: str, *, dark: bool = False):
        context = browser.new_context(
            viewport=PHONE, device_scale_factor=1, has_touch=True, color_scheme="dark" if dark else "light"
        )
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", f"{role}@example.com")
        page.fill("input[name=password]", "demo")
        page.locator("button[type=submit]").tap()
        page.wait_for_url(re.compile(re.escape(live_server) + r"/(my-day)?$"))
        return page, errors

    yield _open
    for context in contexts:
        context.close()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"phone-flow-{name}.png"))


def _assert_touch_sized(locator, what: str) -> None:
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box and box["height"] >= TOUCH and box["width"] >= TOUCH, f"{what} is {box} on a phone"


def _assert_fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"


def _sales_contact(live_db) -> tuple[str, str]:
    """A contact the sales user owns: its id and last name."""
    with live_db.app_context():
        sales = db.session.scalar(select(User).where(User.email == "sales@example.com"))
        contact = db.session.scalars(
            select(Contact)
            .where(Contact.org_id == sales.org_id, Contact.owner_id == sales.id, Contact.deleted_at.is_(None))
            .order_by(Contact.last_name, Contact.id)
        ).first()
        assert contact is not None, "the demo data gives the sales user a contact"
        found = (str(contact.id), contact.last_name)
        db.session.remove()
    return found


def test_navigation_shows_every_item_within_the_screen(phone):
    for role in ("sales", "admin"):
        page, errors = phone(role)
        links = page.locator("nav.main-nav > a, nav.main-nav .nav-menu-toggle")
        assert links.count() >= 7
        for i in range(links.count()):
            link = links.nth(i)
            _assert_touch_sized(link, f"{role}: the nav link {link.inner_text()!r}")
            box = link.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{link.inner_text()} is off screen"
        if role == "admin":
            # The Settings menu's items hide behind it: its caret says so, and a tap opens the area.
            toggle = page.locator("nav.main-nav .nav-menu-toggle")
            assert page.evaluate("(el) => getComputedStyle(el, '::after').content", toggle.element_handle()) == '"▾"'
            menu = page.locator("nav.main-nav .nav-menu-items a").all_text_contents()
            toggle.tap()
            page.wait_for_url("**/settings/users")
            area = page.locator("nav.settings-nav a")
            # The menu names every part of the Settings area, and the area's tabs all fit the screen.
            assert menu == area.all_text_contents()
            for i in range(area.count()):
                _assert_touch_sized(area.nth(i), f"the settings tab {area.nth(i).inner_text()!r}")
                box = area.nth(i).bounding_box()
                assert box["x"] + box["width"] <= PHONE["width"]
        _assert_touch_sized(page.locator("#bell"), "the bell")
        _shot(page, f"nav-{role}")
        assert errors == []


def test_find_a_contact_and_log_an_activity_for_today(phone, live_db, live_server):
    contact_id, last_name = _sales_contact(live_db)
    page, errors = phone("sales")

    # Find: type in the header's search box, tap the hit.
    search = page.locator("#global-search-input")
    _assert_touch_sized(search, "the search box")
    search.tap()
    search.fill(last_name)
    hit = page.locator(f"#search-results a.search-item[href$='/contacts/{contact_id}']")
    expect(hit).to_be_visible()
    _assert_touch_sized(hit, "a search result")
    _shot(page, "find-contact-1-results")
    hit.tap()
    page.wait_for_url(f"**/contacts/{contact_id}")
    expect(page.locator("h1")).to_contain_text(last_name)
    _assert_fits(page)
    _shot(page, "find-contact-2-contact")

    # Log: New activity on the contact's timeline, due today, saved in place.
    new = page.locator("#timeline-form-slot").locator("xpath=..").get_by_role("link", name="New activity")
    new.scroll_into_view_if_needed()
    _assert_touch_sized(new, "New activity")
    new.tap()
    form = page.locator("#timeline-form-slot #activity-form")
    expect(form).to_be_visible()
    form.locator("input[name=subject]").fill("Call back from the phone")
    form.locator("select[name=type]").select_option("call")
    today = page.evaluate("() => { const d = new Date(); return d.toISOString().slice(0, 10); }")
    form.locator("input[name=due_date]").fill(today)
    _assert_fits(page)
    _shot(page, "log-activity-1-form")
    save = form.locator("button[type=submit]").first
    _assert_touch_sized(save, "Save")
    save.tap()
    logged = page.locator(".timeline-item", has_text="Call back from the phone")
    expect(logged).to_be_visible()
    row, delete = logged.locator(".row").bounding_box(), logged.get_by_role("button", name="Delete").bounding_box()
    assert abs(row["x"] + row["width"] - (delete["x"] + delete["width"])) < 2, "Delete dangles at the left"
    _shot(page, "log-activity-2-logged")

    # Check the day: My day lists it; tick it off with a fingertip-sized toggle.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My day").tap()
    page.wait_for_url("**/my-day")
    item = page.locator(".my-day-activity", has_text="Call back from the phone")
    expect(item).to_be_visible()
    toggle = item.locator(".activity-toggle")
    _assert_touch_sized(toggle, "the Complete toggle")
    box = toggle.bounding_box()
    assert abs(box["width"] - box["height"]) < 1, f"the toggle is an oval: {box}"
    _assert_fits(page)
    _shot(page, "my-day-1-today")
    toggle.tap()
    expect(page.locator(".my-day-activity.is-done", has_text="Call back from the phone")).to_be_visible()
    _shot(page, "my-day-2-done")
    assert errors == []


def test_move_a_deal_on_the_board_with_move_to(phone, live_server):
    page, errors = phone("manager")
    page.goto(f"{live_server}/deals/board")
    indicator = page.locator("[data-board-indicator]")
    expect(indicator).to_be_visible()
    expect(indicator).to_contain_text("1 of")
    columns = page.locator(".board-column:not([data-stage-won]):not([data-stage-lost])")
    assert columns.count() >= 2
    _shot(page, "move-deal-1-board")

    # Swipe to the second column: the indicator follows.
    second = columns.nth(1)
    second_name = second.locator(".board-column-header .name > span").first.inner_text().strip()
    second.evaluate("(column) => column.scrollIntoView({inline: 'start', block: 'nearest'})")
    expect(indicator).to_contain_text(f"{second_name} · 2 of")

    # Move its first card on to the next column with "Move to…".
    source = next(c for c in columns.all()[1:] if c.locator("[data-deal-id] [data-move-open]").count())
    source_id = source.get_attribute("data-stage-id")
    card = source.locator("[data-deal-id]").filter(has=page.locator("[data-move-open]")).first
    deal_id = card.get_attribute("data-deal-id")
    stage_ids = [c.get_attribute("data-stage-id") for c in columns.all()]
    target_id = next(stage for stage in stage_ids if stage != source_id)
    move = card.locator("[data-move-open]")
    move.scroll_into_view_if_needed()
    _assert_touch_sized(move, "Move to…")
    move.tap()
    dialog = page.locator("#move-dialog")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], "the Move dialog fits the screen"
    page.locator("#move-dialog-stage").select_option(target_id)
    confirm = page.locator("[data-move-confirm]")
    _assert_touch_sized(confirm, "the dialog's Move")
    _shot(page, "move-deal-2-dialog")
    with page.expect_response(re.compile(r"/deals/[0-9a-f-]+/move")) as moved:
        confirm.tap()
    assert moved.value.status == 200
    expect(page.locator(f'.board-column[data-stage-id="{target_id}"] [data-deal-id="{deal_id}"]')).to_have_count(1)
    expect(dialog).to_be_hidden()
    _assert_fits(page)
    _shot(page, "move-deal-3-moved")

    # And back where it was, so later tests find the board as the demo made it.
    page.locator(f'[data-deal-id="{deal_id}"] [data-move-open]').tap()
    expect(dialog).to_be_visible()
    page.locator("#move-dialog-stage").select_option(source_id)
    with page.expect_response(re.compile(r"/deals/[0-9a-f-]+/move")) as moved:
        confirm.tap()
    assert moved.value.status == 200
    expect(page.locator(f'.board-column[data-stage-id="{source_id}"] [data-deal-id="{deal_id}"]')).to_have_count(1)
    assert errors == []


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_dashboard_charts_are_readable_on_a_phone(phone, live_server, dark):
    page, errors = phone("manager", dark=dark)
    page.goto(f"{live_server}/dashboard?owner=all")
    labels = page.locator(".chart svg text")
    expect(labels.first).to_be_visible()
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('.chart svg text')].map(t => t.getBoundingClientRect().height)"
    )
    assert min(sizes) >= 10, f"chart labels as small as {min(sizes):.1f}px on a phone"
    colours = page.evaluate(
        """() => ({
          card: getComputedStyle(document.querySelector('.chart').closest('.card')).backgroundColor,
          label: getComputedStyle(document.querySelector('.chart svg text')).fill,
        })"""
    )
    assert abs(_luminance(colours["label"]) - _luminance(colours["card"])) > 90  # labels stand out
    _assert_fits(page)
    _shot(page, f"dashboard-{'dark' if dark else 'light'}")
    assert errors == []


def test_notifications_on_a_phone_in_dark_mode(phone, live_db, live_server):
    """The bell sits beside the user menu with its unread count; an unread notification stays dark
    in dark mode (it had a fixed light background) and its text readable."""
    with live_db.app_context():
        manager = db.session.scalar(select(User).where(User.email == "manager@example.com"))
        deal = db.session.scalars(select(Deal).where(Deal.org_id == manager.org_id).order_by(Deal.id)).first()
        db.session.add(
            Notification(
                org_id=manager.org_id,
                user_id=manager.id,
                kind="assigned",
                entity_type="deal",
                entity_id=deal.id,
                label=deal.name,
                detail="Assigned to you by Ada Admin",
            )
        )
        db.session.commit()
        db.session.remove()
    page, errors = phone("manager", dark=True)
    bell = page.locator("#bell")
    expect(bell.locator("[data-bell-count]")).to_be_visible()
    _assert_touch_sized(bell, "the bell")
    brand = page.locator(".app-header .brand").bounding_box()
    assert bell.bounding_box()["x"] > brand["x"] + brand["width"], "the bell comes after the brand"
    assert bell.locator("svg").count() == 1  # drawn, not an emoji a phone may lack the font for
    bell.tap()
    page.wait_for_url("**/notifications")
    unread = page.locator(".notification.unread").first
    expect(unread).to_be_visible()
    colours = unread.evaluate(
        """(el) => ({
          background: getComputedStyle(el).backgroundColor,
          text: getComputedStyle(el.querySelector('.muted')).color,
        })"""
    )
    assert _luminance(colours["background"]) < 60, colours
    assert _luminance(colours["text"]) - _luminance(colours["background"]) > 90, colours
    _assert_fits(page)
    _shot(page, "notifications-dark")
    assert errors == []


def test_calendar_week_keeps_readable_days_on_a_phone(phone, live_server):
    """Seven days squeezed into 390 px cut every activity to "13…": the week scrolls sideways instead,
    says so, and keeps the hours in view."""
    page, errors = phone("sales")
    page.goto(f"{live_server}/activities/calendar?mode=week")
    days = page.locator("table.calendar-week thead th[data-day]")
    expect(days).to_have_count(7)
    assert min(days.nth(i).bounding_box()["width"] for i in range(7)) >= 90
    expect(page.locator("[data-swipe-hint]")).to_be_visible()
    hour = page.locator("table.calendar-week tbody th.calendar-hour").first
    left = hour.bounding_box()["x"]
    page.locator("#calendar .table-wrap").evaluate("(wrap) => { wrap.scrollLeft = wrap.scrollWidth; }")
    expect(days.nth(6)).to_be_in_viewport()
    assert abs(hour.bounding_box()["x"] - left) < 2, "the hours scrolled out of view"
    _assert_fits(page)
    _shot(page, "calendar-week")
    page.goto(f"{live_server}/activities/calendar?mode=month")
    expect(page.locator("table.calendar-month")).to_be_visible()
    _assert_fits(page)
    _shot(page, "calendar-month")
    assert errors == []


def test_import_wizard_on_a_phone(phone, live_server, tmp_path):
    """Upload, map, preview on a phone: the "Create the companies" checkbox sits beside its words (it sat
    alone above them), and the dry run is its own card below the form, not glued to it."""
    page, errors = phone("manager")
    page.goto(f"{live_server}/import")
    page.select_option("select[name=entity]", "contacts")
    upload = tmp_path / "phone_contacts.csv"
    upload.write_text(
        "First name,Last name,Email,Company\n"
        "Ana,Phone,ana.phone@example.org,Phone Trading International Holdings\n"
        "Bo,Phone,bo.phone@example.org,Phone Trading International Holdings\n"
    )
    page.set_input_files("input[name=file]", str(upload))
    page.get_by_role("button", name="Upload and map columns").tap()
    expect(page.locator("h1")).to_contain_text("phone_contacts.csv")
    _assert_fits(page)
    _shot(page, "import-1-mapping")
    page.get_by_role("button", name="Preview").tap()
    expect(page.locator("#import-counts")).to_contain_text("Will create 2")
    beside = page.locator("input[name=create_companies]").evaluate(
        """(box) => {
          const words = document.createRange();
          words.selectNodeContents(box.parentElement);
          words.setStartAfter(box);
          const lines = [...words.getClientRects()].filter((r) => r.width > 1);
          const tick = box.getBoundingClientRect(), middle = tick.top + tick.height / 2;
          return lines[0].left > tick.right && lines[0].top <= middle && middle <= lines[lines.length - 1].bottom;
        }"""
    )
    assert beside, "the checkbox is not beside its words"
    form = page.locator("form", has=page.get_by_role("button", name="Preview")).bounding_box()
    preview = page.locator("#import-preview").bounding_box()
    assert preview["y"] - (form["y"] + form["height"]) >= 8, "the dry run is glued to the form"
    _assert_fits(page)
    _shot(page, "import-2-preview")
    assert errors == []


def test_merge_screen_on_a_phone(phone, live_server, live_db):
    """Two records side by side do not fit 390 px: the table scrolls sideways, says so, and keeps the
    field names in view."""
    with live_db.app_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        ids = db.session.scalars(
            select(Contact.id).where(Contact.org_id == admin.org_id, Contact.deleted_at.is_(None)).limit(2)
        ).all()
        db.session.remove()
    page, errors = phone("manager")
    page.goto(f"{live_server}/contacts/duplicates/merge?ids={ids[0]}&ids={ids[1]}")
    table = page.locator("table.merge-table")
    expect(table).to_be_visible()
    expect(page.locator("[data-swipe-hint]")).to_be_visible()
    name = table.locator("tbody th[scope=row]").first
    left = name.bounding_box()["x"]
    table.evaluate("(table) => { table.scrollLeft = table.scrollWidth; }")
    expect(table.locator("thead th").last).to_be_in_viewport()
    assert abs(name.bounding_box()["x"] - left) < 2, "the field names scrolled out of view"
    corner = table.locator("thead th").first.bounding_box()
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('th') === document.querySelector('.merge-table thead th')",
        [corner["x"] + 4, corner["y"] + corner["height"] / 2],
    )
    assert on_top, "the records' headers slide over the Field header"
    _assert_fits(page)
    _shot(page, "merge")
    assert errors == []


def test_custom_fields_settings_on_a_phone(phone, live_server):
    """Add a single-select field with a long label on a phone: each option keeps its colour beside it
    (they stacked into six look-alike boxes), and the "added" message keeps clear of the tabs below it."""
    page, errors = phone("admin")
    page.goto(f"{live_server}/settings/fields?entity=lead")
    form = page.locator("#field-new-form")
    options = form.locator("[data-options] .inline-form")
    first = options.first.locator("input[name=option_label]").bounding_box()
    colour = options.first.locator("select[name=option_colour]").bounding_box()
    assert abs(first["y"] - colour["y"]) < 4 and colour["x"] > first["x"] + first["width"], "option, colour stacked"
    _assert_touch_sized(options.first.locator("select[name=option_colour]"), "an option's colour")
    form.locator("input[name=label]").fill("Preferred meeting place for the first call")
    form.locator("select[name=type]").select_option("select")
    options.first.locator("input[name=option_label]").fill("Their office")
    _shot(page, "custom-field-1-form")
    form.get_by_role("button", name="Add field").tap()
    flash = page.locator("main > .alert", has_text="was added")
    expect(flash).to_be_visible()
    tabs = page.locator(".settings-nav").bounding_box()
    below = flash.bounding_box()
    assert tabs["y"] - (below["y"] + below["height"]) >= 8, "the message touches the settings tabs"
    row = page.locator("#custom-fields tbody tr", has_text="Preferred meeting place")
    expect(row).to_be_visible()
    _assert_fits(page)
    _shot(page, "custom-field-2-added")
    # Delete it again (to the trash), so the lead forms of later tests are as the demo made them.
    delete = row.get_by_role("button", name="Delete")
    _assert_touch_sized(delete, "a field's Delete")
    delete.tap()
    expect(page.locator("#trashed-fields")).to_contain_text("Preferred meeting place")
    expect(page.locator("#custom-fields")).not_to_contain_text("Preferred meeting place")
    _assert_fits(page)
    assert errors == []


# Visible elements with a light, opaque background, other than the accent (dark text on it by
# design) and the chart legend's swatches (the bars' colours).
LIGHT_PATCHES = """
() => {
  const probe = document.body.appendChild(document.createElement('i'));
  probe.style.background = 'var(--accent)';
  const accent = getComputedStyle(probe).backgroundColor;
  probe.remove();
  const found = new Set();
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2 || el.closest('.swatch, svg')) continue;
    const style = getComputedStyle(el);
    const parts = (style.backgroundColor.match(/[\\d.]+/g) || []).map(Number);
    if (parts.length < 3 || (parts.length === 4 && parts[3] < 0.5) || style.backgroundColor === accent) continue;
    if (0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2] > 150) {
      found.add(el.tagName.toLowerCase() + '.' + String(el.className).trim().split(/\\s+/).join('.'));
    }
  }
  return [...found];
}
"""


def test_dark_mode_on_a_phone_has_no_light_patches(phone, live_server, live_db):
    """Dark mode follows the system on every main page: no badge, highlight or panel kept a light colour."""
    _, last_name = _sales_contact(live_db)
    page, errors = phone("admin", dark=True)
    patches = {}
    for path in (
        "/",
        "/my-day",
        "/contacts",
        "/leads",
        "/activities",
        "/activities/calendar",
        "/activities/calendar?mode=month",
        "/deals/board",
        "/contacts/duplicates",
        "/import",
        "/settings/fields",
        "/settings/currencies",
        "/notifications",
        "/trash",
        f"/search?q={last_name}",
    ):
        page.goto(f"{live_server}{path}")
        page.wait_for_load_state("networkidle")
        found = page.evaluate(LIGHT_PATCHES)
        if found:
            patches[path] = found
    page.locator("#global-search-input").fill(last_name)
    expect(page.locator("#search-results mark").first).to_be_visible()
    found = page.evaluate(LIGHT_PATCHES)
    if found:
        patches["the search box"] = found
    _shot(page, "search-dark")
    assert patches == {}
    assert errors == []


def _luminance(rgb: str) -> float:
    r, g, b = (int(part) for part in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b

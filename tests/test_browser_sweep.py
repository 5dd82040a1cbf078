"""Every main page as each role, on a desktop (1440x900) and a phone (390x844), in real Chromium: no
console error, and on the phone nothing wider than the screen (a page that scrolls sideways, or an
element sticking out of it, outside a container made to scroll). Screenshots of every page go to
test-artifacts/screenshots/ (README, "Tests"), which CI keeps as artifacts.

One browser for the whole run; one context per role and size, signed in once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
ROLES = ("admin", "manager", "sales")

MANAGERS = ("admin", "manager")

# (name, path, roles that may open it[, what to open on the page before the screenshot]); "{contact}"
# and friends are filled from the lists.
PAGES = [
    ("home", "/", ROLES),  # the dashboard, or My day for a sales user
    ("dashboard", "/dashboard", ROLES),
    ("my-day", "/my-day", ROLES),
    ("contacts", "/contacts", ROLES),
    ("contacts-columns", "/contacts", ROLES, "details.column-chooser > summary"),
    ("contacts-save-view", "/contacts", ROLES, "details.save-view > summary"),
    ("contacts-filter", "/contacts", ROLES, "[data-filter-summary]"),
    ("contacts-tab", "/contacts", ROLES, ".view-tabs a.view-tab:not(.view-tab-plain)"),
    ("deals-tab", "/deals", ROLES, ".view-tabs a.view-tab:not(.view-tab-plain)"),
    ("contact", "{contact}", ROLES),
    ("contact-new", "/contacts/new", ROLES),
    ("contact-edit", "{contact}/edit", MANAGERS),
    ("contact-duplicates", "/contacts/duplicates", ROLES),
    ("contact-merge", "/contacts/duplicates/merge?ids={contact_id}&ids={contact2_id}", MANAGERS),
    ("companies", "/companies", ROLES),
    ("company", "{company}", ROLES),
    ("company-new", "/companies/new", ROLES),
    ("company-duplicates", "/companies/duplicates", ROLES),
    ("leads", "/leads", ROLES),
    ("lead", "{lead}", ROLES),
    ("lead-new", "/leads/new", ROLES),
    ("lead-duplicates", "/leads/duplicates", ROLES),
    ("deals", "/deals", ROLES),
    ("deals-columns", "/deals", ROLES, "details.column-chooser > summary"),
    ("deal", "{deal}", ROLES),
    ("deal-new", "/deals/new", ROLES),
    ("deal-edit", "{deal}/edit", MANAGERS),
    ("board", "/deals/board", ROLES),
    ("board-move", "/deals/board", MANAGERS, "[data-move-open]"),
    ("activities", "/activities", ROLES),
    ("activity-new", "/activities/new", ROLES),
    ("calendar-week", "/activities/calendar", ROLES),
    ("calendar-month", "/activities/calendar?mode=month", ROLES),
    ("calendar-team", "/activities/calendar?who=team&mode=month", MANAGERS),
    ("search", "/search?q=a", ROLES),
    ("notifications", "/notifications", ROLES),
    ("account", "/account", ROLES),
    ("import", "/import", MANAGERS),
    ("import-history", "/import/history", MANAGERS),
    ("trash", "/trash", MANAGERS),
    ("users", "/settings/users", MANAGERS),
    ("pipelines", "/pipelines", MANAGERS),
    ("tags", "/settings/tags", MANAGERS),
    ("fields", "/settings/fields", MANAGERS),
    ("fields-deals", "/settings/fields?entity=deal", MANAGERS),
    ("currencies", "/settings/currencies", MANAGERS),
    ("organisation", "/settings/organisation", ("admin",)),
]

# Elements sticking out of the screen, outside any container that scrolls or clips them.
OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  if (document.documentElement.scrollWidth > width + 1) {
    found.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + 'px');
  }
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX)) return true;
      if (style.display === 'none' || p.hidden) return true;
    }
    return false;
  };
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) continue;
    if (box.left >= -1 && box.right <= width + 1) continue;
    if (getComputedStyle(el).position === 'fixed' || clipped(el)) continue;
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
    found.push(name + ' spans ' + Math.round(box.left) + '..' + Math.round(box.right) + 'px');
    if (found.length >= 8) break;
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def record_urls(browser, live_server):
    """Detail pages of the demo organisation: a contact (and a second one's id), a company, a lead, a deal."""
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, live_server, "admin")
    urls = {}
    for key, list_path, table in (
        ("contact", "/contacts", "#contact-table"),
        ("company", "/companies", "#company-table"),
        ("lead", "/leads", "#lead-table"),
        ("deal", "/deals", "#deal-table"),
    ):
        page.goto(f"{live_server}{list_path}")
        links = page.locator(f"{table} tbody tr td a[href^='{list_path}/']")
        detail = re.compile(re.escape(list_path) + r"/[0-9a-f-]{36}")
        found = links.evaluate_all("(links) => links.map((a) => a.getAttribute('href'))")
        hrefs = list(dict.fromkeys(href for href in found if detail.fullmatch(href)))
        assert hrefs, f"the demo data has a {key}"
        urls[key] = hrefs[0]
        urls[f"{key}_id"] = hrefs[0].rsplit("/", 1)[1]
        if len(hrefs) > 1:
            urls[f"{key}2_id"] = hrefs[1].rsplit("/", 1)[1]
    context.close()
    return urls


def _sign_in(page, live_server, role):
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", f"{role}@example.com")
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("role", ROLES)
def test_main_pages_render_cleanly(browser, live_server, record_urls, role, size):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(f"{page.url}: {message.text}"))
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    _sign_in(page, live_server, role)
    problems = {}
    try:
        for name, path, roles, *opening in PAGES:
            if role not in roles:
                continue
            url = live_server + re.sub(r"\{(\w+)\}", lambda m: record_urls[m.group(1)], path)
            response = page.goto(url)
            assert response is not None and response.status == 200, f"{role} {name}: {response and response.status}"
            page.wait_for_load_state("networkidle")
            if opening:
                # A menu, dialog or panel the page opens in place: it must fit the screen too.
                page.locator(opening[0]).first.click()
                page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SCREENSHOTS / f"{role}-{size}-{name}.png"))
            if size == "phone":
                wide = page.evaluate(OVERFLOW)
                if wide:
                    problems[name] = wide
    finally:
        context.close()
    assert errors == []
    assert problems == {}, "wider than a 390 px screen"

"""Real Chromium: a manager imports a semicolon-separated Windows-1252 file, fixes a mapping, sees
the preview's errors, runs it, watches the progress reach 100 %, opens the imported contacts and
undoes the import."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FILE = Path(__file__).parent / "data" / "import" / "browser_cp1252_semicolon.csv"


def test_manager_imports_a_windows_1252_file_and_undoes_it(page, page_errors, live_server, browser_login):
    browser_login(page, "manager")
    page.get_by_role("link", name="Import", exact=True).click()
    page.select_option("select[name=entity]", "contacts")
    page.set_input_files("input[name=file]", str(FILE))
    page.get_by_role("button", name="Upload and map columns").click()

    expect(page.locator("h1")).to_contain_text("browser_cp1252_semicolon.csv")
    first = page.locator("select[data-column='Vorname']")
    expect(first).to_have_value("")  # not a header we know: the manager maps it
    expect(page.locator("select[data-column='E-mail Address']")).to_have_value("email")
    expect(page.locator("select[data-column='Organization']")).to_have_value("company")
    first.select_option("first_name")
    page.get_by_role("button", name="Preview").click()

    expect(page.locator("#import-counts")).to_contain_text("Will create 3")
    expect(page.locator("#import-counts")).to_contain_text("errors 2")
    expect(page.locator("#import-errors tbody tr")).to_have_count(2)
    expect(page.locator("#import-rows")).to_contain_text("Jürgen")
    expect(page.locator("#import-rows")).to_contain_text("Straße & Co")

    page.get_by_role("button", name="Import 3 rows").click()
    expect(page.locator("#import-status")).to_contain_text("100 %", timeout=20_000)
    expect(page.locator("progress")).to_have_attribute("value", "100")

    page.get_by_role("link", name="Open the imported contacts").click()
    table = page.locator("#contact-table")
    expect(table).to_contain_text("Jürgen")
    expect(table).to_contain_text("Zoë")
    expect(table).to_contain_text("3 contacts")  # the import's, none of the demo's

    page.goto(f"{live_server}/import/history")
    row = page.locator("#import-history tbody tr").first
    expect(row).to_contain_text("browser_cp1252_semicolon.csv")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Undo import").click()
    expect(page.locator("#import-history tbody tr").first).to_contain_text("undone")
    page.goto(f"{live_server}/contacts?q=J%C3%BCrgen")
    expect(page.locator("#contact-table")).not_to_contain_text("Jürgen")
    assert page_errors == []

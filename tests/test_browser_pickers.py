"""Record pickers in real Chromium: type, arrows and Enter pick a company; Esc puts the choice back;
"Create company '<typed>'" creates one and picks it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_company_picker_with_the_keyboard(page, page_errors, live_server, browser_login):
    browser_login(page, "sales")
    page.goto(f"{live_server}/contacts/new")
    box = page.locator("#primary_company_id-search")
    options = page.locator("#primary_company_id-options")
    box.click()
    expect(options).to_be_visible()
    first = options.locator("[role=option][data-id]:not([data-id=''])").first
    name = first.get_attribute("data-label")
    assert name
    with page.expect_response(re.compile(r"/search/pick/company\?q=" + re.escape(name[:4]))):
        box.fill(name[:4])
    expect(options.locator("[aria-selected=true]")).to_have_attribute("data-label", name)  # the best first
    box.press("ArrowDown")
    box.press("ArrowUp")
    box.press("Enter")
    expect(options).to_be_hidden()
    assert page.url.endswith("/contacts/new")  # Enter picked, it did not submit
    assert page.locator("#primary_company_id").input_value() == first.get_attribute("data-id")
    chosen_label = name
    expect(box).to_have_value(chosen_label)
    # Esc while typing puts the chosen name back
    box.fill("zzzz")
    box.press("Escape")
    expect(box).to_have_value(chosen_label)
    # Create a company inline, then save the contact with it
    box.fill("Brand New Widgets")
    create = options.locator(".picker-create")
    expect(create).to_contain_text("Create company “Brand New Widgets”")
    previous = page.locator("#primary_company_id").input_value()
    create.click()
    expect(page.locator("#field-primary_company_id")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#primary_company_id")).not_to_have_value(previous)
    expect(page.locator("#primary_company_id")).not_to_have_value("")
    expect(box).to_have_value("Brand New Widgets")
    page.fill("#first_name", "Picky")
    page.click("#contact-form button[type=submit]")
    page.wait_for_url(re.compile(r"/contacts/[0-9a-f-]{36}$"))
    expect(page.locator("main")).to_contain_text("Brand New Widgets")
    assert page_errors == []

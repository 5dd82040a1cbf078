"""Real Chromium: a manager merges three "Acme" companies from the Duplicates page, choosing the website
of one and the phone of another, sees all their contacts and deals on the survivor, then undoes the
merge from the toast."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Company, Contact, Deal, Organization

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_manager_merges_three_companies_and_undoes_it(page, page_errors, live_server, live_db, browser_login):
    with live_db.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "demo"))
        rows = [
            ("Acme", "https://acme.example", None, "Quinn"),
            ("ACME Inc.", None, "+1 555 0100 200", "Rosa"),
            ("acme.com", "http://old-acme.example", "555 0100 999", "Sami"),
        ]
        ids = []
        for name, website, phone, person in rows:
            company = Company(org_id=org.id, name=name, website=website, phone=phone)
            db.session.add(company)
            db.session.flush()
            db.session.add(Contact(org_id=org.id, first_name=person, last_name="Dupe", primary_company_id=company.id))
            db.session.add(Deal(org_id=org.id, name=f"{person} deal", company_id=company.id))
            ids.append(company.id)
        db.session.commit()
        db.session.remove()
    first, second, _third = (str(i) for i in ids)

    browser_login(page, "manager")
    page.goto(f"{live_server}/companies/duplicates")
    group = page.locator(".duplicate-group", has=page.locator(f"a[href='/companies/{first}']"))
    expect(group).to_contain_text("Same name")
    group.get_by_role("link", name="Merge…").click()
    page.locator(f"input[name=field_website][value='{first}']").check()
    page.locator(f"input[name=field_phone][value='{second}']").check()
    page.get_by_role("button", name="Merge 3 companies").click()

    result = page.locator("#merge-result")
    for person in ("Quinn", "Rosa", "Sami"):
        expect(result.locator("[data-related=contacts]")).to_contain_text(f"{person} Dupe")
        expect(result.locator("[data-related=deals]")).to_contain_text(f"{person} deal")
    with live_db.app_context():
        survivor = db.session.scalar(select(Company).where(Company.id.in_(ids)))
        assert (survivor.website, survivor.phone) == ("https://acme.example", "+1 555 0100 200")
        db.session.remove()

    page.locator(".toast").get_by_role("button", name="Undo").click()
    expect(page.locator(".alert", has_text="The merge was undone.")).to_be_visible()
    expect(page.locator(".duplicate-group", has=page.locator(f"a[href='/companies/{second}']"))).to_be_visible()
    with live_db.app_context():
        live = db.session.scalars(select(Company.name).where(Company.id.in_(ids))).all()
        assert sorted(live) == ["ACME Inc.", "Acme", "acme.com"]
        db.session.remove()
    assert page_errors == []

"""Labels everywhere a person reads (issue 18, "Things people read"): detail pages, search results and
CSV exports show a choice's label, never its stored value; an import accepts both; exported dates
and times are spreadsheet-friendly; the formula guard leaves phone numbers alone."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from crm_web.csv_export import _cell
from crm_web.entities import CONTACT, DEAL
from crm_web.formatting import choice_label
from crm_web.services.search import SearchService
from tests import factories


def _rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_choice_labels():
    assert choice_label("referral", "lead_source") == "Referral"
    assert choice_label("email_campaign", "lead_source") == "Email campaign"
    assert choice_label("in_progress", "activity_status") == "In progress"
    assert choice_label("won") == "Won" and choice_label(None) == "" and choice_label("odd_value") == "Odd value"


def test_detail_pages_show_labels(client, login, org):
    login("admin")
    contact = factories.make_contact(org, lead_source="email_campaign", status="customer")
    html = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "Email campaign" in html and "email campaign" not in html and ">email_campaign<" not in html
    deal = factories.make_deal(org, source="referral")
    html = client.get(f"/deals/{deal.id}").get_data(as_text=True)
    assert "<dd>Referral</dd>" in html and "<dd>referral</dd>" not in html


def test_search_results_show_labels(actor, org):
    factories.make_deal(org, name="Zanzibar expansion", status="won")
    groups = SearchService(actor).search("Zanzibar")
    hit = next(h for g in groups for h in g.hits if h.label == "Zanzibar expansion")
    assert hit.detail == "Won"


def test_exports_use_labels_and_imports_accept_both(client, login, org):
    login("admin")
    factories.make_contact(org, first_name="Label", last_name="Person", status="customer", phone="+1-555-0100")
    rows = _rows(client.get("/contacts/export.csv"))
    status = rows[0].index("Status")
    phone = rows[0].index("Phone")
    person = next(r for r in rows if r[0] == "Label")
    assert person[status] == "Customer" and person[phone] == "+1-555-0100"
    factories.make_deal(org, name="Export won", status="won", value=Decimal("5"))
    rows = _rows(client.get("/deals/export.csv"))
    assert next(r for r in rows if r[0] == "Export won")[rows[0].index("Status")] == "Won"
    column = next(c for c in CONTACT.csv if c.header == "Status")
    assert column.parse("Customer") == column.parse("customer") == column.parse(" CUSTOMER ") == "customer"
    assert next(c for c in DEAL.csv if c.header == "Status").parse("Won") == "won"


def test_csv_dates_and_times_are_spreadsheet_friendly():
    assert _cell(datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)) == "2026-03-04 05:06:07"
    assert _cell(datetime(2026, 3, 4, 5, 6, 7, 891011).date()) == "2026-03-04"


def test_the_formula_guard_keeps_phone_numbers_and_amounts():
    for inert in ("+1-555-0100", "+44 (20) 7946 0958", "-42.50", "+1 555 0100"):
        assert _cell(inert) == inert
    for formula in ("=HYPERLINK(1)", "+cmd|' /C calc'!A0", "-2+3+cmd", "@SUM(A1)", "=1+1", "+A1"):
        assert _cell(formula) == "'" + formula


def test_exported_times_carry_no_microseconds(client, login, org):
    login("admin")
    factories.make_company(org, name="Timed Co", created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    rows = _rows(client.get("/companies/export.csv"))
    created = rows[0].index("Created")
    assert next(r for r in rows if r[0] == "Timed Co")[created] == "2026-01-02 03:04:05"

"""Inputs at the edges of the column and calendar types: every one is a 400/422 with a message."""

from __future__ import annotations

import pytest

from tests.conftest import HX
from tests.security_support import build_world, make_users


@pytest.fixture
def world(org):
    return build_world(org, make_users(org), "Edge")


@pytest.fixture
def admin_client(client, world):
    with client.session_transaction() as session:
        session["_user_id"] = world.users["admin"].get_id()
        session["_fresh"] = True
    return client


EDGE_FILTERS = [
    ("/contacts", "birthday.onDate.9999-12-31"),
    ("/contacts", "created.after.0001-01-01T00:00:00+01:00"),
    ("/contacts", "created.onDate.9999-12-31"),
    ("/contacts", "created.between.0001-01-01,9999-12-31"),
    ("/contacts", "created.after.9999-12-31"),
    ("/contacts", "created.before.9999-12-31T23:59:59-01:00"),
    ("/companies", "employees.greaterThan.999999999999999999"),
    ("/companies", "revenue.greaterThan.999999999999999999"),
    ("/deals", "value.equals.999999999999999999"),
    ("/deals", "probability.lessThan.-999999999999999999"),
    ("/deals", "expectedClose.onDate.9999-12-31"),
    ("/deals/board", "expectedClose.between.2020-01-01,9999-12-31"),
    ("/deals/export.csv", "created.after.0001-01-01T00:00:00+01:00"),
    ("/contacts/export.csv", "birthday.onDate.9999-12-31"),
    ("/activities", "duration.equals.999999999999999999"),
]


@pytest.mark.parametrize("path,f", EDGE_FILTERS)
def test_filter_values_at_the_edges_are_refused(path, f, app, admin_client):
    for headers in ({}, HX):
        response = admin_client.get(path, query_string={"f": f}, headers=headers)
        assert response.status_code in (400, 422), (path, f, response.status_code)


# --- numbers at the edges of their columns ---------------------------------------------------------

OUT_OF_RANGE = ["1e12", "1000000000000", "999999999999.995", "-1e400", "1e999999", "NaN", "sNaN", "Infinity", "-0.01"]


def _deal_form(world, value: str) -> dict:
    return {"name": "Edge deal", "value": value, "currency": "USD", "stage_id": str(world["stage"])}


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_deal_value_beyond_its_column_is_a_form_error(value, app, admin_client, world):
    created = admin_client.post("/deals", data=_deal_form(world, value))
    assert created.status_code == 422, created.status_code
    expected = "Enter a number." if value in ("NaN", "sNaN", "Infinity") else "between 0.00 and 999,999,999,999.99"
    assert expected in created.get_data(as_text=True)
    edited = admin_client.post(f"/deals/{world['deal']}", data=_deal_form(world, value))
    assert edited.status_code == 422


def test_the_largest_deal_value_its_column_holds_is_saved(app, admin_client, world):
    from crm_web.extensions import db
    from crm_web.models import Deal

    response = admin_client.post(f"/deals/{world['deal']}", data=_deal_form(world, "999999999999.99"))
    assert response.status_code in (200, 303)
    db.session.expire_all()
    assert str(db.session.get(Deal, world["deal"]).value) == "999999999999.99"


@pytest.mark.parametrize("value", ["1e14", "NaN", "Infinity"])
def test_lead_and_company_amounts_beyond_their_columns_are_form_errors(value, app, admin_client, world):
    lead = admin_client.post("/leads", data={"first_name": "Edge", "estimated_value": value})
    assert lead.status_code == 422
    company = admin_client.post("/companies", data={"name": "Edge Ltd", "annual_revenue": value + "0" * 3})
    assert company.status_code == 422
    convert = admin_client.post(f"/leads/{world['lead']}/convert", data={"create_deal": "y", "deal_value": value})
    assert convert.status_code == 422


def test_services_refuse_numbers_their_columns_cannot_hold(app, world):
    """Whatever path the values come by (a form, an import, a script): a 422, not a database error."""
    from decimal import Decimal

    from crm_web.errors import ValidationError
    from crm_web.services.base import Actor
    from crm_web.services.companies import CompanyService
    from crm_web.services.deals import DealService

    actor = Actor.of(world.users["admin"])
    with pytest.raises(ValidationError) as refused:
        DealService(actor).update(world["deal"], value=Decimal("1e12"))
    assert "value" in refused.value.field_errors
    with pytest.raises(ValidationError):
        CompanyService(actor).update(world["company"], employee_count=10**12)


def test_limits_come_from_the_column_types():
    from decimal import Decimal

    from crm_web.column_limits import column_limits
    from crm_web.models import Company, Deal, Organization

    deal = column_limits(Deal.value)
    assert deal is not None and deal.high == Decimal("999999999999.99") and deal.places == 2
    employees = column_limits(Company.employee_count)
    assert employees is not None and employees.high == 2**31 - 1
    epoch = column_limits(Organization.cache_epoch)
    assert epoch is not None and epoch.high == 2**63 - 1
    assert column_limits(Company.name) is None
    assert deal.problem(Decimal("999999999999.994")) is None
    assert deal.problem(Decimal("999999999999.995")) is not None
    assert deal.problem(Decimal("NaN")) is not None


# --- JSON bodies are forms too (Flask-WTF reads them) --------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"first_name": "a\x00b", "status": "prospect"},
        {"first_name": "ok", "status": "prospect", "last_name": "\ud800"},
        {"first_name\x00": "ok", "status": "prospect"},
        {"first_name": ["a", "b\x00"], "status": "prospect"},
        {"first_name": {"nested": "x"}, "status": "prospect"},
        {"first_name": 5, "status": "prospect"},
        ["first_name", "x"],
        "text",
    ],
)
def test_a_json_body_is_checked_like_a_form(body, app, admin_client):
    response = admin_client.post("/contacts", json=body)
    assert response.status_code == 400, response.status_code


def test_malformed_json_is_400(app, admin_client):
    response = admin_client.post("/contacts", data=b'{"first_name": ', content_type="application/json")
    assert response.status_code == 400


def test_an_out_of_range_filter_says_why(app):
    from crm_web.entities import COMPANY, CONTACT
    from crm_web.filters.grammar import parse_rows

    parsed = parse_rows({"f": ["birthday.onDate.9999-12-31"]}, CONTACT.filters)
    assert parsed.rows[0].error == '"9999-12-31" is out of range: dates must be between 0001-01-01 and 9999-12-30.'
    parsed = parse_rows({"f": ["created.after.0001-01-01T00:00:00+01:00"]}, CONTACT.filters)
    assert "out of range" in parsed.rows[0].error
    parsed = parse_rows({"f": ["employees.greaterThan.999999999999999999"]}, COMPANY.filters)
    assert parsed.rows[0].error == (
        '"999999999999999999" is out of range: the value must be between -2,147,483,648 and 2,147,483,647.'
    )
    assert parse_rows({"f": ["employees.greaterThan.2147483647"]}, COMPANY.filters).ok
    assert parse_rows(
        {"f": ["birthday.onDate.9999-12-30", "created.after.0001-01-01T01:00:00+01:00"]}, CONTACT.filters
    ).ok

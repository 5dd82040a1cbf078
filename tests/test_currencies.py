"""A sum never adds two currencies as one (issue 18, "Wrong numbers").

Every sum of deal values converts each currency's sum with the organisation's exchange rates into
the pipeline's currency (the board) or the organisation's (dashboard, forecast, company figures,
the internal API, the company export); a currency without a rate is shown apart, never added in.
The tallies (keyed by currency) agree with the live aggregates and with the oracles, on both engines.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from sqlalchemy import update

from crm_web.errors import PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.models import Deal, ExchangeRate
from crm_web.services.board import BoardService
from crm_web.services.companies import CompanyService
from crm_web.services.currencies import ExchangeRateService, load_rates
from crm_web.services.org_stats import org_stats
from crm_web.services.organisations import OrganisationService
from crm_web.services.stats.deals import rollup
from tests import factories
from tests.conftest import HX
from tests.stats_oracles import forecast, pipeline_stats
from tests.test_tallies import TODAY, _month, assert_deal_tallies_agree


def _rate(org, currency: str, rate: str) -> None:
    db.session.add(ExchangeRate(org_id=org.id, currency=currency, rate=Decimal(rate), set_at=date(2026, 1, 2)))
    db.session.commit()


@pytest.fixture
def mixed(org, users):
    """A USD pipeline holding 1,000 USD, 500 EUR (rate 1.10) and 1,000,000 JPY (no rate) open deals."""
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    _rate(org, "EUR", "1.10")
    deals = [
        factories.make_deal(org, stage=stages[0], value=Decimal("1000"), currency="USD", owner_id=users["sales"].id),
        factories.make_deal(org, stage=stages[0], value=Decimal("500"), currency="EUR", owner_id=users["admin"].id),
        factories.make_deal(org, stage=stages[1], value=Decimal("1000000"), currency="JPY"),
    ]
    return pipeline, stages, deals


def _rollup(actor):
    return rollup(
        actor,
        forecast_from=TODAY.replace(day=1),
        forecast_until=_month(6),
        closed_since=datetime.combine(_month(-6), time.min, tzinfo=UTC),
    )


def test_the_board_converts_into_the_pipelines_currency_and_shows_the_rest_apart(actor, org, mixed):
    pipeline, stages, _ = mixed
    board = BoardService(actor)
    for stats in (board.stage_totals(), board.column_stats(pipeline.id)):  # the tallies, the live aggregate
        first, second = stats[stages[0].id], stats[stages[1].id]
        assert (first.count, first.total, first.currency) == (2, Decimal("1550.00"), "USD")
        assert first.unconverted == ()
        assert (second.count, second.total) == (1, Decimal("0.00"))  # never 1,000,000 "dollars"
        assert [str(u) for u in second.unconverted] == ["1 deal in JPY not converted"]
    _rate(org, "JPY", "0.0067")
    for stats in (board.stage_totals(), board.column_stats(pipeline.id)):
        assert stats[stages[1].id].total == Decimal("6700.00") and stats[stages[1].id].unconverted == ()


def test_a_pipeline_in_another_currency_sums_in_its_own(actor, org, users):
    pipeline = factories.make_pipeline(org)
    db.session.execute(update(type(pipeline)).where(type(pipeline).id == pipeline.id).values(currency="EUR"))
    db.session.commit()
    stage = factories.stages_of(pipeline)[0]
    factories.make_deal(org, stage=stage, value=Decimal("100"), currency="EUR")
    factories.make_deal(org, stage=stage, value=Decimal("110"), currency="USD")
    stats = BoardService(actor).column_stats(pipeline.id)[stage.id]
    assert stats.currency == "EUR" and stats.total == Decimal("100.00")
    assert [str(u) for u in stats.unconverted] == ["1 deal in USD not converted"]  # EUR has no rate yet
    _rate(org, "EUR", "1.10")
    stats = BoardService(actor).column_stats(pipeline.id)[stage.id]
    assert stats.total == Decimal("200.00") and stats.unconverted == ()  # 110 USD = 100 EUR


def test_the_dashboard_numbers_agree_with_the_oracles_in_every_currency(actor, org, users, mixed):
    stats = _rollup(actor).pipeline_stats()
    assert stats == pipeline_stats(actor)
    assert stats.currency == "USD" and stats.open_value == Decimal("1550.00") and stats.open_count == 3
    assert [str(u) for u in stats.unconverted] == ["1 deal in JPY not converted"]
    _rate(org, "JPY", "0.0067")
    stats = _rollup(actor).pipeline_stats()
    assert stats == pipeline_stats(actor) and stats.open_value == Decimal("8250.00") and not stats.unconverted


def test_tallies_agree_with_the_aggregates_when_a_deal_changes_currency(actor, org, users, mixed):
    _, _, deals = mixed
    factories.make_deal(
        org, stage=mixed[1][0], value=Decimal("10.05"), currency="GBP", expected_close_date=TODAY, probability=50
    )
    _rate(org, "GBP", "1.27")
    owners = [users["admin"].id, users["sales"].id]
    assert_deal_tallies_agree(actor, org, owners)
    db.session.execute(update(Deal).where(Deal.id == deals[0].id).values(currency="EUR"))
    db.session.commit()
    assert_deal_tallies_agree(actor, org, owners)
    rolled = _rollup(actor)
    expected = {m.month.strftime("%Y-%m"): (m.count, m.weighted, m.best_case) for m in forecast(actor, today=TODAY)}
    assert {k: v for k, v in rolled.forecast().items() if k in expected} == {k: v for k, v in expected.items() if v[0]}


def test_company_figures_and_the_internal_api_convert(actor, org, users):
    company = factories.make_company(org)
    stage = factories.stages_of(factories.make_pipeline(org))[0]
    _rate(org, "EUR", "2")
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("100"), currency="USD")
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("100"), currency="EUR")
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("100000"), currency="JPY")
    stats = CompanyService(actor).stats(company.id)
    assert (stats.total_deal_value, stats.currency, stats.unconverted_deals) == (Decimal("300.00"), "USD", 1)
    row = next(r for r in CompanyService(actor).list_page().items if r.company.id == company.id)
    assert row.open_deal_value == Decimal("300.00")
    found = org_stats(org_id=org.id)
    assert found.currency == "USD"
    assert found.deals_by_status["open"] == {"count": 3, "value": "300.00", "unconverted": 1}


def test_the_pages_state_the_currency_and_what_was_not_converted(client, login, org, mixed):
    login("manager")
    board = client.get("/deals/board").get_data(as_text=True)
    assert "1 deal in JPY not converted" in board and "$1.0M" not in board and "(USD)" in board
    dashboard = client.get("/").get_data(as_text=True)
    assert "1 deal in JPY not converted" in dashboard and "$1.0M" not in dashboard


def test_rates_settings_admins_set_managers_look_sales_are_refused(client, login, org, users):
    login("sales")
    assert client.get("/settings/currencies").status_code == 403
    login("manager")
    page = client.get("/settings/currencies")
    assert page.status_code == 200 and 'id="exchange-rates"' in page.get_data(as_text=True)
    assert client.post("/settings/currencies", data={"currency": "EUR", "rate": "1.1"}).status_code == 403
    login("admin")
    assert 'name="rate"' in client.get("/settings/currencies").get_data(as_text=True)
    response = client.post("/settings/currencies", data={"currency": "EUR", "rate": "1.1"})
    assert response.status_code == 303
    rates = load_rates(db.session, org.id)
    assert rates.rates == {"EUR": Decimal("1.10000000")} and rates.set_at["EUR"] is not None
    assert client.post("/settings/currencies", data={"currency": "EUR", "rate": "-3"}).status_code == 422
    assert client.post("/settings/currencies", data={"currency": "USD", "rate": "2"}).status_code == 422
    assert client.post("/settings/currencies/EUR/delete").status_code == 303
    assert load_rates(db.session, org.id).rates == {}


def test_a_rate_change_renews_the_cached_board(client, login, org, mixed):
    login("admin")
    assert "1 deal in JPY not converted" in client.get("/deals/board", headers=HX).get_data(as_text=True)
    client.post("/settings/currencies", data={"currency": "JPY", "rate": "0.0067"})
    html = client.get("/deals/board", headers=HX).get_data(as_text=True)
    assert "not converted" not in html and "$8,250" in html


def test_only_admins_set_rates_and_a_new_default_currency_restates_them(actor, org, users):
    with pytest.raises(PermissionDenied):
        ExchangeRateService(factories.actor_for(users["manager"])).set_rate("EUR", "1.1")
    service = ExchangeRateService(actor)
    with pytest.raises(ValidationError):
        service.set_rate("XXX", "1")
    service.set_rate("EUR", "1.25")
    service.set_rate("GBP", "1.5")
    OrganisationService(actor).update(name=org.name, default_currency="EUR", time_zone="UTC", trash_retention_days=None)
    rates = load_rates(db.session, org.id)
    assert rates.base == "EUR"
    assert rates.rates == {"USD": Decimal("0.80000000"), "GBP": Decimal("1.20000000")}


def test_a_company_export_states_values_in_the_organisations_currency(client, login, org):
    login("admin")
    company = factories.make_company(org, name="Export Co")
    stage = factories.stages_of(factories.make_pipeline(org))[0]
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("100"), currency="JPY")
    body = client.get("/companies/export.csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(body)))
    header = rows[0]
    column = next(i for i, name in enumerate(header) if name.startswith("Open deal value"))
    assert header[column] == "Open deal value (USD)"
    assert rows[1][column] in ("0", "0.00")


@pytest.mark.parametrize(
    "data",
    [
        {"currency": "EUR", "rate": "abc"},
        {"currency": "EUR", "rate": ""},
        {"currency": "EUR", "rate": "0"},
        {"currency": "EUR", "rate": "1e400"},
        {"currency": "EUR", "rate": "NaN"},
        {"currency": "EUR", "rate": "99999999999999999999"},
        {"currency": "XXX", "rate": "1"},
        {"currency": "", "rate": "1"},
        {"currency": "E\x00R", "rate": "1"},
    ],
)
def test_a_bad_rate_is_a_form_error_never_a_500(client, login, org, data):
    login("admin")
    response = client.post("/settings/currencies", data=data)
    assert 400 <= response.status_code < 500, response.status_code
    assert load_rates(db.session, org.id).rates == {}


def test_removing_a_rate_that_is_not_set_changes_nothing(client, login, org):
    login("admin")
    _rate(org, "EUR", "1.1")
    response = client.post("/settings/currencies/XYZ/delete")  # idempotent, like a second click
    assert response.status_code == 303
    assert load_rates(db.session, org.id).rates == {"EUR": Decimal("1.10000000")}


def test_the_rates_page_costs_the_same_for_one_or_many_rates(client, login, org, count_queries):
    login("admin")
    _rate(org, "EUR", "1.1")
    with count_queries() as one:
        assert client.get("/settings/currencies").status_code == 200
    for currency in ("GBP", "JPY", "CAD", "AUD"):
        _rate(org, currency, "1.2")
    with count_queries() as many:
        assert client.get("/settings/currencies").status_code == 200
    assert many.count == one.count, (one, many)

"""The pipelines settings page and the company list never add two currencies as one (issue 18): each
stage's open value and each company's open deal value are converted in SQL into the organisation's
currency (services/currencies.py in_org_currency_sql), and deals in a currency without a rate are left
out and said to be."""

from __future__ import annotations

import re
from decimal import Decimal

from crm_web.services.companies import CompanyService
from crm_web.services.pipelines import PipelineService
from tests import factories
from tests.conftest import HX
from tests.test_currencies import _rate


def test_stage_open_values_are_in_the_organisations_currency(actor, org, users):
    pipeline = factories.make_pipeline(org)
    first, second = factories.stages_of(pipeline)[:2]
    _rate(org, "EUR", "2")
    factories.make_deal(org, stage=first, value=Decimal("100"), currency="EUR")
    factories.make_deal(org, stage=first, value=Decimal("30"), currency="USD")
    factories.make_deal(org, stage=second, value=Decimal("1000000"), currency="JPY")
    counts = PipelineService(factories.actor_for(users["manager"])).stage_counts(pipeline.id)
    assert (counts[first.id].deals, counts[first.id].open_value, counts[first.id].unconverted) == (2, Decimal(230), 0)
    assert (counts[second.id].deals, counts[second.id].open_value, counts[second.id].unconverted) == (1, 0, 1)


def test_the_pipelines_page_states_the_currency_and_what_was_left_out(client, login, org, count_queries):
    pipeline = factories.make_pipeline(org, name="Renewals")
    first, second = factories.stages_of(pipeline)[:2]
    _rate(org, "EUR", "2")
    factories.make_deal(org, stage=first, value=Decimal("100"), currency="EUR")
    login("manager")
    client.get("/pipelines")  # the pipeline catalog and the stage counts cached
    with count_queries() as one:
        page = client.get("/pipelines").get_data(as_text=True)
    assert "$200" in page and "€100" not in page and "without a rate" not in page
    assert not [s for s in one.statements if "FROM deals" in s], one  # the counts: from the cache
    factories.make_deal(org, stage=second, value=Decimal("1000000"), currency="JPY")
    page = client.get("/pipelines").get_data(as_text=True)  # a deal changed: counted again at once
    assert "(1 without a rate excluded)" in page and "$1.0M" not in page and "1,000,000" not in page
    with count_queries() as more:
        assert "(1 without a rate excluded)" in client.get("/pipelines").get_data(as_text=True)
    assert more.count == one.count


def test_the_company_list_converts_in_sql_and_says_what_it_left_out(actor, client, login, org, users, count_queries):
    company = factories.make_company(org, name="Mixed Ltd")
    stage = factories.stages_of(factories.make_pipeline(org))[0]
    _rate(org, "EUR", "2")
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("100"), currency="EUR")
    login("admin")
    client.get("/companies", headers=HX)
    with count_queries() as one:
        page = client.get("/companies", headers=HX).get_data(as_text=True)
    assert "$200" in page and "data-unconverted" not in page
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("5000"), currency="JPY")
    factories.make_deal(org, stage=stage, company_id=company.id, value=Decimal("7000"), currency="JPY")
    row = next(r for r in CompanyService(actor).list_page().items if r.company.id == company.id)
    assert (row.open_deal_value, row.unconverted_deals) == (Decimal("200.00"), 2)
    with count_queries() as more:
        page = client.get("/companies", headers=HX).get_data(as_text=True)
    assert re.search(r"\$200.*?2 deals without a rate excluded", page, re.S)
    assert more.count == one.count  # converted in the list's own statement, not deal by deal
    assert CompanyService(actor).list_page(sort="-open_value").items[0].company.name == "Mixed Ltd"

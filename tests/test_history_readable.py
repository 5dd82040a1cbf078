"""Record history a person can read (issue 18, "Things people read"): names instead of ids (linked
while the record lives, "(deleted)" once trashed), labels instead of stored choices, dates in the
organisation's form, a constant number of statements; the deal's history card refreshes after
Mark won / lost / Reopen."""

from __future__ import annotations

from decimal import Decimal

from crm_web.services.companies import CompanyService
from crm_web.services.deals import DealService
from crm_web.services.tags import TagService
from tests import factories
from tests.conftest import HX


def _history_html(client, deal) -> str:
    return client.get(f"/deals/{deal.id}/history", headers=HX).get_data(as_text=True)


def test_deal_history_shows_names_links_labels_and_deleted_records(client, login, org, users, actor):
    pipeline = factories.make_pipeline(org)
    stages = factories.stages_of(pipeline)
    acme = factories.make_company(org, name="Acme Rockets")
    doomed = factories.make_company(org, name="Doomed Ltd")
    deal = factories.make_deal(org, stage=stages[0], company_id=doomed.id, owner_id=users["admin"].id)
    service = DealService(actor)
    service.update(deal.id, company_id=acme.id, owner_id=users["sales"].id, stage_id=stages[1].id)
    tag = factories.make_tag(org, name="Hot lead")
    TagService(actor).assign("deal", deal.id, tag_id=tag.id)
    service.mark_won(deal.id)
    CompanyService(actor).delete(doomed.id)
    login("admin")
    html = _history_html(client, deal)
    assert 'id="deal-history"' in html and "<html" not in html
    assert f'href="/companies/{acme.id}"' in html and "Acme Rockets" in html
    assert "Doomed Ltd (deleted)" in html and f"/companies/{doomed.id}" not in html
    assert users["sales"].name in html and users["admin"].name in html
    assert stages[1].name in html and "Hot lead" in html and "added Hot lead" in html
    assert "Won" in html and "→" in html
    for internal in (str(tag.id), str(acme.id) + "<", "Stage id", "Company id", ">open<", ">won<"):
        assert internal not in html, internal
    assert ".0000" not in html and "+00:00<" not in html  # closed_at in the organisation's form


def test_resolving_names_costs_the_same_for_one_or_many_changes(org, users, actor, count_queries):
    deal = factories.make_deal(org)
    service = DealService(actor)
    companies = [factories.make_company(org, name=f"Co {i}") for i in range(12)]
    service.update(deal.id, company_id=companies[0].id)
    with count_queries() as few:
        service.readable_history(deal.id)
    for company in companies[1:]:
        service.update(deal.id, company_id=company.id, value=Decimal(len(company.name)))
    with count_queries() as many:
        items = service.readable_history(deal.id)
    assert few.count == many.count == 2  # the entries, then every name at once
    assert {line.new.text for item in items for line in item.lines if line.label == "Company"} >= {"Co 11", "Co 1"}


def test_the_history_card_refreshes_after_mark_won_lost_and_reopen(client, login, org, users):
    login("admin")
    deal = factories.make_deal(org, owner_id=users["admin"].id)
    html = client.get(f"/deals/{deal.id}").get_data(as_text=True)
    assert 'hx-trigger="deals-changed from:body"' in html.split('id="deal-history"', 1)[1].split(">", 1)[0]
    for action in ("won", "reopen", "lost"):
        response = client.post(f"/deals/{deal.id}/{action}", headers=HX)
        assert response.status_code == 200 and "deals-changed" in response.headers["HX-Trigger"]
    card = _history_html(client, deal)
    assert card.count('<li class="timeline-item') == 3 and "Lost" in card
    assert client.get(f"/deals/{deal.id}/history").status_code == 303  # a full page: the detail page

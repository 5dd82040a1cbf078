"""The internal JSON API: scoped token auth, one round trip per call plus the token's, exact counts, JSON errors.

Tokens and their scopes, rotation, limits and row-level security: tests/test_api_tokens.py."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm_web.extensions import db
from crm_web.models import UsageRecord, utcnow
from crm_web.services import org_stats
from tests import factories

TOKEN = factories.BEARER
# Checking the bearer token (and, on PostgreSQL, setting its organisation) is one statement, like the
# user loader of a page (services/api_tokens.authenticate).
TOKEN_STATEMENTS = 1


@pytest.fixture(autouse=True)
def every_org_token(app):
    """The token of these tests may act for every organisation (scoping: tests/test_api_tokens.py)."""
    return factories.make_api_token(all_orgs=True)


@pytest.fixture
def populated(org, other_org, users):
    """3 contacts (+1 deleted), 2 companies, 4 deals (2 open, 1 won, 1 lost; +1 deleted), 1 lead, 2 activities."""
    for _ in range(3):
        factories.make_contact(org)
    factories.make_contact(org, deleted_at=utcnow())
    factories.make_company(org)
    factories.make_company(org)
    pipeline = factories.make_pipeline(org)
    factories.make_deal(org, pipeline=pipeline, value=Decimal("100.50"))
    factories.make_deal(org, pipeline=pipeline, value=Decimal("200"))
    factories.make_deal(org, pipeline=pipeline, value=Decimal("1000"), status="won")
    factories.make_deal(org, pipeline=pipeline, value=Decimal("50"), status="lost")
    factories.make_deal(org, pipeline=pipeline, value=Decimal("999"), status="won", deleted_at=utcnow())
    factories.make_lead(org)
    factories.make_activity(org)
    factories.make_activity(org)
    factories.make_activity(org, deleted_at=utcnow())
    # Another organisation's rows never count.
    factories.make_contact(other_org)
    factories.make_deal(other_org, value=Decimal("5"))
    return org


EXPECTED = {
    "contacts": 3,
    "companies": 2,
    "deals": 4,
    "leads": 1,
    "activities": 2,
    "users": 3,
    "deals_by_status": {
        "open": {"count": 2, "value": "300.50", "unconverted": 0},
        "won": {"count": 1, "value": "1000.00", "unconverted": 0},
        "lost": {"count": 1, "value": "50.00", "unconverted": 0},
    },
    "currency": "USD",
}


def test_stats_counts_everything_in_one_statement(client, populated, count_queries):
    with count_queries() as queries:
        response = client.get(f"/internal/orgs/{populated.id}/stats", headers=TOKEN)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"org_id": str(populated.id), **EXPECTED}
    assert queries.count == TOKEN_STATEMENTS + 1, queries


def test_stats_of_an_empty_org(client, org):
    response = client.get(f"/internal/orgs/{org.id}/stats", headers=TOKEN)
    assert response.json["contacts"] == 0
    assert response.json["deals_by_status"]["won"] == {"count": 0, "value": "0.00", "unconverted": 0}


def test_usage_records_a_snapshot_in_one_statement(client, populated, count_queries):
    with count_queries() as queries:
        response = client.post(f"/internal/orgs/{populated.id}/usage", headers=TOKEN, csrf=False)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert queries.count == TOKEN_STATEMENTS + 1, queries
    body = response.json
    assert {k: body[k] for k in ("contacts", "companies", "deals", "leads", "activities", "users")} == {
        k: v for k, v in EXPECTED.items() if k not in ("deals_by_status", "currency")
    }
    record = db.session.get(UsageRecord, uuid.UUID(body["id"]))
    assert record is not None and record.org_id == populated.id and record.contacts == 3 and record.users == 3
    assert body["recorded_at"].startswith(str(record.recorded_at.date()))


def test_service_raises_not_found_for_unknown_org(app):
    from crm_web.errors import NotFound

    with pytest.raises(NotFound):
        org_stats.org_stats(org_id=uuid.uuid4())
    with pytest.raises(NotFound):
        org_stats.record_usage(org_id=uuid.uuid4())
    assert db.session.scalar(select(func.count()).select_from(UsageRecord)) == 0


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": factories.INTERNAL_TOKEN},
        {"Authorization": f"Basic {factories.INTERNAL_TOKEN}"},
        {"Authorization": f"Bearer {factories.INTERNAL_TOKEN}x"},
        {"Authorization": f"Bearer {factories.INTERNAL_TOKEN[:-1]}"},
        {"Authorization": "Bearer "},
    ],
)
def test_missing_or_wrong_token_is_401(client, org, method, headers):
    path = f"/internal/orgs/{org.id}/" + ("stats" if method == "get" else "usage")
    response = getattr(client, method)(path, headers=headers, csrf=False)
    assert response.status_code == 401
    assert response.is_json and set(response.json) == {"error"}


@pytest.mark.parametrize("method,suffix", [("get", "stats"), ("post", "usage")])
def test_malformed_org_id_is_400(client, method, suffix):
    response = getattr(client, method)(f"/internal/orgs/not-a-uuid/{suffix}", headers=TOKEN, csrf=False)
    assert response.status_code == 400
    assert response.json == {"error": "Malformed organisation id."}


@pytest.mark.parametrize("method,suffix", [("get", "stats"), ("post", "usage")])
def test_unknown_org_is_404(client, method, suffix):
    response = getattr(client, method)(f"/internal/orgs/{uuid.uuid4()}/{suffix}", headers=TOKEN, csrf=False)
    assert response.status_code == 404
    assert response.json == {"error": "Organisation not found."}


def test_the_retired_environment_token_opens_nothing(client, org, app, monkeypatch):
    monkeypatch.setenv("CRM_INTERNAL_TOKEN", "a-value-an-old-deployment-still-sets")
    app.config["CRM_INTERNAL_TOKEN"] = "a-value-an-old-deployment-still-sets"
    try:
        response = client.get(
            f"/internal/orgs/{org.id}/stats", headers={"Authorization": "Bearer a-value-an-old-deployment-still-sets"}
        )
    finally:
        del app.config["CRM_INTERNAL_TOKEN"]
    assert response.status_code == 401 and response.is_json and set(response.json) == {"error"}


def test_no_login_and_no_csrf_needed(client, org):
    # csrf=False: a service sends no CSRF token and has no session.
    response = client.post(f"/internal/orgs/{org.id}/usage", headers=TOKEN, csrf=False)
    assert response.status_code == 201


def test_wrong_method_is_json_405(client, org):
    response = client.delete(f"/internal/orgs/{org.id}/stats", headers=TOKEN, csrf=False)
    assert response.status_code == 405 and response.is_json


def test_unexpected_errors_leak_nothing(client, org, monkeypatch):
    def boom(**_):
        raise RuntimeError("password=hunter2 at db.internal:5432")

    monkeypatch.setattr(org_stats, "org_stats", boom)
    response = client.get(f"/internal/orgs/{org.id}/stats", headers=TOKEN)
    assert response.status_code == 500
    assert "hunter2" not in response.get_data(as_text=True) and set(response.json) == {"error"}

"""The real whitelists compile and run against the real models, on every engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from crm_web.entities import CONTACT, DEAL, ENTITIES
from crm_web.extensions import db
from crm_web.filters import FieldType, compile_filter, describe_fields, parse_filter
from crm_web.filters.types import OPERATOR_ARITY, OPERATORS_BY_TYPE
from crm_web.models import Contact, Deal, contact_tags, deal_tags
from tests import factories

NOW = datetime(2026, 3, 11, 12, tzinfo=UTC)
SOME_ID = "6f1c0d2e-0000-4000-8000-000000000001"


def sample_value(field, op: str) -> str | None:
    """A representative, valid URL value for one operator of one field."""
    arity = OPERATOR_ARITY[op]
    if arity == "none":
        return None
    if arity == "range":
        return "last30Days"
    kind = field.type
    single = {
        FieldType.TEXT: "a_%",
        FieldType.NUMBER: "5",
        FieldType.MONEY: "99.50",
        FieldType.DATE: "2026-03-01",
        FieldType.DATETIME: "2026-03-01",
        FieldType.UUID: SOME_ID,
        FieldType.TAG: SOME_ID,
        FieldType.CHOICE: field.choices[0][0] if field.choices else "",
    }[kind]
    if arity == "pair":
        return {FieldType.DATE: "2026-03-01,2026-03-31", FieldType.DATETIME: "2026-03-01,2026-03-31T12:00:00Z"}.get(
            kind, "1,100"
        )
    if arity == "list" and kind is FieldType.CHOICE:
        return ",".join(v.replace("\\", "\\\\").replace(",", "\\,") for v, _ in field.choices[:2])
    return single


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_every_operator_of_every_field_runs(app, org, entity: str) -> None:
    fields, model = ENTITIES[entity].filter_fields(), ENTITIES[entity].model
    for name, field in fields.items():
        for op in OPERATORS_BY_TYPE[field.type]:
            value = sample_value(field, op)
            raw = f"{name}.{op}" + ("" if value is None else f".{value}")
            spec = parse_filter(MultiDict([("f", raw)]), fields)
            clause = compile_filter(spec, fields, now=NOW)
            stmt = select(func.count()).select_from(model).where(model.org_id == org.id, clause)
            assert db.session.scalar(stmt) == 0, raw


def test_whitelists_describe_themselves(app) -> None:
    for fields in (e.filter_fields() for e in ENTITIES.values()):
        described = describe_fields(fields)
        assert [d["name"] for d in described] == list(fields)
        assert all(d["operators"] for d in described)
        assert all(d["choices"] for d in described if d["type"] == "choice")


def contact_codes(org, query: list[tuple[str, str]]) -> list[str]:
    spec = parse_filter(MultiDict(query), CONTACT.filters)
    clause = compile_filter(spec, CONTACT.filters, now=NOW)
    stmt = select(Contact.first_name).where(Contact.org_id == org.id, clause).order_by(Contact.first_name)
    return list(db.session.scalars(stmt))


def test_contact_filters_on_real_rows(app, org, other_org, users) -> None:
    acme = factories.make_company(org, name="Acme Corp")
    vip = factories.make_tag(org, name="vip")
    alice = factories.make_contact(
        org,
        first_name="Alice",
        last_name="Smith",
        primary_company_id=acme.id,
        status="customer",
        owner_id=users["sales"].id,
    )
    factories.make_contact(org, first_name="Bob", last_name="Jones", email=None, status="lead")
    factories.make_contact(other_org, first_name="Alice", last_name="Other")
    db.session.execute(contact_tags.insert().values(contact_id=alice.id, tag_id=vip.id))
    db.session.commit()

    assert contact_codes(org, [("f", "company.contains.ACME")]) == ["Alice"]
    assert contact_codes(org, [("f", "company.notEquals.acme corp")]) == ["Bob"]
    assert contact_codes(org, [("f", "company.isEmpty")]) == ["Bob"]
    assert contact_codes(org, [("f", f"tags.in.{vip.id}")]) == ["Alice"]
    assert contact_codes(org, [("f", "tags.isEmpty")]) == ["Bob"]
    assert contact_codes(org, [("f", f"owner.equals.{users['sales'].id}")]) == ["Alice"]
    assert contact_codes(org, [("f", "email.isEmpty")]) == ["Bob"]
    assert contact_codes(org, [("f", "name.contains.smith"), ("f", "status.in.lead"), ("match", "any")]) == [
        "Alice",
        "Bob",
    ]
    assert contact_codes(org, [("f", "created.before.2000-01-01")]) == []
    # Without an injected clock, relative ranges are anchored on the current UTC time.
    spec = parse_filter(MultiDict([("f", "created.inRange.last7Days")]), CONTACT.filters)
    stmt = (
        select(func.count()).select_from(Contact).where(Contact.org_id == org.id, compile_filter(spec, CONTACT.filters))
    )
    assert db.session.scalar(stmt) == 2


def test_a_trashed_related_row_counts_as_absent(app, org) -> None:
    """The soft-delete criteria reach into the EXISTS, so a trashed company no longer matches."""
    acme = factories.make_company(org, name="Acme Corp")
    factories.make_contact(org, first_name="Alice", primary_company_id=acme.id)
    acme.deleted_at = datetime.now(UTC)
    db.session.commit()
    assert contact_codes(org, [("f", "company.equals.acme corp")]) == []
    assert contact_codes(org, [("f", "company.isEmpty")]) == ["Alice"]


def test_deal_filters_follow_relations_without_inflating_counts(app, org) -> None:
    company = factories.make_company(org, name="Initech")
    contact = factories.make_contact(org, first_name="Peter", last_name="Gibbons")
    tags = [factories.make_tag(org, name=n) for n in ("a", "b", "c")]
    deal = factories.make_deal(org, name="TPS reports", company_id=company.id, contact_id=contact.id)
    factories.make_deal(org, name="Red stapler")
    db.session.execute(deal_tags.insert(), [{"deal_id": deal.id, "tag_id": t.id} for t in tags])
    db.session.commit()

    def count(raw: list[str]) -> int:
        spec = parse_filter(MultiDict([("f", r) for r in raw]), DEAL.filters)
        clause = compile_filter(spec, DEAL.filters, now=NOW)
        return db.session.scalar(select(func.count()).select_from(Deal).where(Deal.org_id == org.id, clause))

    assert count(["tags.in." + ",".join(str(t.id) for t in tags)]) == 1
    assert count(["company.startsWith.init", "contact.contains.gibb"]) == 1
    assert count(["contact.notContains.gibb"]) == 1
    assert count(["stageName.isNotEmpty"]) == 2
    assert count([f"stage.notEquals.{uuid.uuid4()}"]) == 2

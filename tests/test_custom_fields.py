"""Custom fields (issue 20): definitions in Settings, values on records, filters with the operators
of each type against hand-computed rows, sorting, history, CSV, roles and statement budgets; both engines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_web.custom_fields import MAX_FIELDS, FieldInput
from crm_web.errors import BadRequest, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import Company, Organization
from crm_web.services.companies import CompanyService
from crm_web.services.custom_fields import CustomFieldService
from tests import factories


def _define(actor, entity, label, kind="text", **extra):
    return CustomFieldService(actor).create(entity, FieldInput(label=label, type=kind, **extra))


def _options(*labels):
    return [("", label, "blue") for label in labels]


@pytest.fixture
def admin(users):
    return factories.actor_for(users["admin"])


# --- definitions -------------------------------------------------------------------------------


def test_a_field_gets_a_stable_key_and_rename_keeps_the_values(admin, org):
    cf = _define(admin, "company", "Renewal date", "date")
    assert cf.key == "renewal_date" and cf.name == "cf_renewal_date"
    company = CompanyService(admin).create(name="Acme", custom_input={"renewal_date": "2026-03-01"})
    renamed = CustomFieldService(admin).update(
        "company", cf.id, FieldInput(label="Contract renewal", type="date", position=cf.position)
    )
    assert renamed.key == "renewal_date" and renamed.label == "Contract renewal"
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom == {"renewal_date": "2026-03-01"}
    # A second field with the first label gets a key of its own.
    again = _define(admin, "company", "Renewal date", "text")
    assert again.key == "renewal_date_2"


def test_option_rename_keeps_the_records_choice(admin, org):
    cf = _define(admin, "company", "Tier", "select", options=_options("Gold", "Silver"))
    gold = cf.options[0]
    company = CompanyService(admin).create(name="Acme", custom_input={"tier": "Gold"})
    assert company.custom == {"tier": gold.id}
    CustomFieldService(admin).update(
        "company",
        cf.id,
        FieldInput(
            label="Tier", type="select", options=[(gold.id, "Platinum", "purple"), (cf.options[1].id, "Silver", "gray")]
        ),
    )
    fields = CompanyService(admin).custom_fields()
    assert fields[0].option(gold.id).label == "Platinum"


def test_delete_restore_and_purge_keep_then_drop_the_values(admin, org):
    service = CustomFieldService(admin)
    cf = _define(admin, "company", "Region")
    company = CompanyService(admin).create(name="Acme", custom_input={"region": "North"})
    service.delete("company", cf.id)
    assert CompanyService(admin).custom_fields() == []
    assert [f.key for f in service.fields("company", trashed=True)] == ["region"]
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom == {"region": "North"}  # kept in the trash
    service.restore("company", cf.id)
    assert [f.key for f in CompanyService(admin).custom_fields()] == ["region"]
    with pytest.raises(ValidationError):
        service.purge("company", cf.id)  # only from the trash
    service.delete("company", cf.id)
    service.purge("company", cf.id)
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom is None
    assert service.fields("company", trashed=True) == []


def test_a_type_change_converts_or_is_refused_with_the_count(admin, org):
    service = CustomFieldService(admin)
    cf = _define(admin, "company", "Seats")
    companies = CompanyService(admin)
    for value in ("12", "40", "many", "lots"):
        companies.create(name=f"C {value}", custom_input={"seats": value})
    with pytest.raises(ValidationError) as refused:
        service.update("company", cf.id, FieldInput(label="Seats", type="number"))
    assert "2 records" in refused.value.message
    assert service.get("company", cf.id).type == "text"  # unchanged
    for company in db.session.query(Company).filter(Company.name.in_(["C many", "C lots"])):
        companies.update(company.id, custom_input={"seats": ""})
    changed = service.update("company", cf.id, FieldInput(label="Seats", type="number"))
    assert changed.type == "number"
    values = sorted(c.custom["seats"] for c in db.session.query(Company) if c.custom)
    assert values == [12, 40]


def test_roles_admins_change_managers_look_sales_may_not(users, org):
    manager, sales = factories.actor_for(users["manager"]), factories.actor_for(users["sales"])
    with pytest.raises(PermissionDenied):
        _define(manager, "deal", "Renewal date", "date")
    assert CustomFieldService(manager).fields("deal") == []
    with pytest.raises(PermissionDenied):
        CustomFieldService(sales).fields("deal")
    with pytest.raises(NotFound):
        CustomFieldService(factories.actor_for(users["admin"])).fields("activity")


def test_at_most_100_fields_per_entity(admin, org):
    org_row = db.session.get(Organization, org.id)
    org_row.custom_fields = {
        "lead": [
            {"id": f"x{i}", "key": f"f{i}", "label": f"F {i}", "type": "text", "position": i} for i in range(MAX_FIELDS)
        ]
    }
    db.session.commit()
    with pytest.raises(ValidationError) as refused:
        _define(admin, "lead", "One more")
    assert "at most 100" in refused.value.message
    _define(admin, "deal", "Deals have their own 100")


def test_values_are_validated_by_type_with_each_fields_message(admin, org):
    _define(admin, "company", "Seats", "number")
    _define(admin, "company", "Renewal", "date", required=True)
    _define(admin, "company", "Site", "url")
    _define(admin, "company", "Billing email", "email")
    _define(admin, "company", "Notes", "long_text")
    with pytest.raises(ValidationError) as refused:
        CompanyService(admin).create(
            name="",
            custom_input={
                "seats": "ten",
                "renewal": "",
                "site": "not a url",
                "billing_email": "x",
                "notes": "n" * 5001,
            },
        )
    errors = refused.value.field_errors
    assert errors["name"]
    assert errors["cf_seats"] == "Enter a number."
    assert errors["cf_renewal"] == "Renewal is required."
    assert errors["cf_site"] == "Enter a web address."
    assert errors["cf_billing_email"] == "Enter an email address."
    assert errors["cf_notes"] == "At most 5000 characters."


# --- filters and sorting: every type, every operator, against hand-computed rows ----------------


@pytest.fixture
def typed(app, admin, users, org, other_org):
    """Companies A..E with a value of each type (E has none), and another organisation's field."""
    app.config["CLOCK"] = lambda: datetime(2026, 5, 14, 12, tzinfo=UTC)
    tier = _define(admin, "company", "Tier", "select", options=_options("Gold", "Silver", "Bronze"))
    regions = _define(admin, "company", "Regions", "multi_select", options=_options("North", "South", "East"))
    for label, kind in [
        ("Code", "text"),
        ("Notes", "long_text"),
        ("Seats", "number"),
        ("Budget", "money"),
        ("Renewal", "date"),
        ("Active", "checkbox"),
        ("Site", "url"),
        ("Mail", "email"),
        ("Rep", "user"),
    ]:
        _define(admin, "company", label, kind)
    gold, silver, bronze = (o.id for o in tier.options)
    north, south, east = (o.id for o in regions.options)
    rep = str(users["sales"].id)
    rows = {
        "A": {
            "code": "AB-1",
            "notes": "likes golf",
            "seats": "10",
            "budget": "1000.50",
            "renewal": "2026-05-14",
            "active": "yes",
            "site": "a.example",
            "mail": "a@a.io",
            "rep": rep,
            "tier": "Gold",
            "regions": ["North", "South"],
        },
        "B": {
            "code": "ab-2",
            "notes": "",
            "seats": "25",
            "budget": "99.99",
            "renewal": "2026-06-01",
            "active": "no",
            "site": "https://b.example/x",
            "mail": "",
            "rep": "",
            "tier": "Silver",
            "regions": ["South"],
        },
        "C": {
            "code": "zz%_",
            "notes": "Golf and tennis",
            "seats": "-3",
            "budget": "5000",
            "renewal": "2025-12-31",
            "active": "yes",
            "site": "",
            "mail": "c@c.io",
            "rep": rep,
            "tier": "Bronze",
            "regions": ["East"],
        },
        "D": {
            "code": "",
            "notes": "",
            "seats": "1000000",
            "budget": "",
            "renewal": "2026-07-20",
            "active": "",
            "site": "",
            "mail": "",
            "rep": "",
            "tier": "Gold",
            "regions": [],
        },
        "E": None,
    }
    service = CompanyService(admin)
    for name, values in rows.items():
        service.create(name=name, custom_input=values)
    foreign = factories.make_user(other_org, role="admin")
    _define(factories.actor_for(foreign), "company", "Secret")
    return {"gold": gold, "silver": silver, "bronze": bronze, "north": north, "south": south, "east": east, "rep": rep}


def _names(admin, filter_args=None, sort=None):
    service = CompanyService(admin)
    spec = parse_filter(filter_args, service.filter_fields()) if filter_args else None
    page = service.list_page(filter_spec=spec, sort=sort, per_page=100)
    return [row.company.name if hasattr(row, "company") else row.name for row in page.items]


FILTER_CASES = [
    # text: equals and contains ignore case; LIKE wildcards are literal; empty/not empty
    ("cf_code.equals.ab-1", "A"),
    ("cf_code.notEquals.ab-1", "BCDE"),
    ("cf_code.contains.B-", "AB"),
    ("cf_code.notContains.ab", "CDE"),
    ("cf_code.startsWith.zz%", "C"),
    ("cf_code.endsWith.-2", "B"),
    ("cf_code.isEmpty", "DE"),
    ("cf_code.isNotEmpty", "ABC"),
    ("cf_notes.contains.golf", "AC"),
    ("cf_site.contains.b.example", "B"),
    ("cf_mail.isEmpty", "BDE"),
    # number and money: numeric, not textual, comparisons
    ("cf_seats.greaterThan.9", "ABD"),
    ("cf_seats.lessOrEqual.10", "AC"),
    ("cf_seats.between.0,25", "AB"),
    ("cf_seats.equals.-3", "C"),
    ("cf_seats.notEquals.10", "BCDE"),
    ("cf_seats.isEmpty", "E"),
    ("cf_budget.greaterOrEqual.1000.5", "AC"),
    ("cf_budget.lessThan.100", "B"),
    ("cf_budget.isNotEmpty", "ABC"),
    # date: on, before, after, between, relative ranges in the organisation's calendar
    ("cf_renewal.onDate.2026-05-14", "A"),
    ("cf_renewal.before.2026-05-14", "C"),
    ("cf_renewal.after.2026-05-14", "BD"),
    ("cf_renewal.between.2026-01-01,2026-06-01", "AB"),
    ("cf_renewal.inRange.next30Days", "AB"),
    ("cf_renewal.inRange.thisYear", "ABD"),
    ("cf_renewal.isEmpty", "E"),
    # checkbox
    ("cf_active.isTrue", "AC"),
    ("cf_active.isFalse", "BDE"),
    # single select: by option id
    ("cf_tier.equals.{gold}", "AD"),
    ("cf_tier.notEquals.{gold}", "BCE"),
    ("cf_tier.in.{silver},{bronze}", "BC"),
    ("cf_tier.notIn.{silver},{bronze}", "ADE"),
    # multi select
    ("cf_regions.in.{south}", "AB"),
    ("cf_regions.in.{north},{east}", "AC"),
    ("cf_regions.notIn.{south}", "CDE"),
    ("cf_regions.isEmpty", "DE"),
    ("cf_regions.isNotEmpty", "ABC"),
    # user
    ("cf_rep.equals.{rep}", "AC"),
    ("cf_rep.notEquals.{rep}", "BDE"),
    ("cf_rep.in.{rep}", "AC"),
    ("cf_rep.isEmpty", "BDE"),
]


def test_every_operator_of_every_type_against_hand_computed_rows(admin, typed):
    for raw, expected in FILTER_CASES:
        got = _names(admin, {"f": [raw.format(**typed)]}, sort="name")
        assert "".join(got) == expected, (raw, got)


def test_unknown_and_other_organisations_keys_are_refused(admin, typed):
    fields = CompanyService(admin).filter_fields()
    for raw in ("cf_secret.equals.x", "cf_nothing.equals.x", "cf_seats.contains.1", "cf_tier.equals.nope"):
        with pytest.raises(ValidationError):
            parse_filter({"f": [raw]}, fields)


def test_sorting_by_custom_fields(admin, typed):
    assert _names(admin, {"f": ["cf_seats.isNotEmpty"]}, sort="cf_seats") == ["C", "A", "B", "D"]
    assert _names(admin, {"f": ["cf_seats.isNotEmpty"]}, sort="-cf_seats") == ["D", "B", "A", "C"]
    assert _names(admin, {"f": ["cf_renewal.isNotEmpty"]}, sort="cf_renewal") == ["C", "A", "B", "D"]
    assert _names(admin, {"f": ["cf_code.isNotEmpty"]}, sort="-cf_code") == ["C", "B", "A"]
    with pytest.raises(BadRequest):
        _names(admin, sort="cf_secret")


def test_a_filter_value_is_a_bound_parameter(admin, typed, count_queries):
    with count_queries() as q:
        _names(admin, {"f": ["cf_code.equals.x' OR 1=1 --"]})
    assert "OR 1=1" not in "\n".join(q.statements)

"""Custom fields (issue 20): definitions in Settings, values on records, filters with the operators
of each type against hand-computed rows, sorting, history, CSV, roles and statement budgets; both engines."""

from __future__ import annotations

import pytest

from crm_web.custom_fields import MAX_FIELDS, FieldInput
from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
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

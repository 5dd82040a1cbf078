"""Custom fields (issue 20): definitions in Settings, values on records, filters with the operators
of each type against hand-computed rows, sorting, history, CSV, roles and statement budgets; both engines."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from crm_web.custom_fields import MAX_FIELDS, FieldInput
from crm_web.errors import BadRequest, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.models import Company, Deal, Organization
from crm_web.services.companies import CompanyService
from crm_web.services.custom_fields import CustomFieldService
from tests import factories
from tests.conftest import HX


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
def typed(app, admin, users, org, other_org, monkeypatch):
    """Companies A..E with a value of each type (E has none), and another organisation's field."""
    monkeypatch.setitem(app.config, "CLOCK", lambda: datetime(2026, 5, 14, 12, tzinfo=UTC))
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


def test_a_select_filter_matches_the_field_s_value_not_the_option_id_elsewhere_in_the_record(admin, typed):
    """On SQLite a select's equality first looks for the option id in the record's JSON text
    (custom_fields._ChoiceIs); the id in another field's value must not make the row match."""
    CompanyService(admin).create(name="F", custom_input={"code": typed["gold"], "tier": "Silver"})
    gold, silver = typed["gold"], typed["silver"]
    assert "".join(_names(admin, {"f": [f"cf_tier.equals.{gold}"]}, sort="name")) == "AD"
    assert "".join(_names(admin, {"f": [f"cf_tier.notEquals.{gold}"]}, sort="name")) == "BCEF"
    assert "".join(_names(admin, {"f": [f"cf_tier.equals.{silver}"]}, sort="name")) == "BF"
    assert "".join(_names(admin, {"f": [f"cf_code.equals.{gold}", f"cf_tier.equals.{silver}"]}, sort="name")) == "F"


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


# --- pages: settings, forms, detail, inline edit ------------------------------------------------


def test_settings_page_admins_edit_managers_look_sales_403(client, login, org):
    login("sales")
    assert client.get("/settings/fields").status_code == 403
    login("manager")
    page = client.get("/settings/fields?entity=deal")
    assert page.status_code == 200 and b"Add a field" not in page.data
    assert client.post("/settings/fields/deal", data={"label": "X", "type": "text"}).status_code == 403
    login("admin")
    assert b"Add a field" in client.get("/settings/fields?entity=deal").data
    created = client.post(
        "/settings/fields/deal", data={"label": "Renewal date", "type": "date", "help": "When it renews"}
    )
    assert created.status_code == 303
    page = client.get("/settings/fields?entity=deal")
    assert b"cf_renewal_date" in page.data and b"When it renews" in page.data
    refused = client.post("/settings/fields/deal", data={"label": "", "type": "date"})
    assert refused.status_code == 422 and b"Enter a label." in refused.data
    bad_type = client.post("/settings/fields/deal", data={"label": "Odd", "type": "blob"})
    assert bad_type.status_code == 422 and b"Choose a type." in bad_type.data
    no_options = client.post("/settings/fields/deal", data={"label": "Tier", "type": "select"})
    assert no_options.status_code == 422 and b"Add at least one option." in no_options.data
    assert client.get("/settings/fields?entity=activity").status_code == 404
    assert client.get("/settings/fields/deal/nope").status_code == 404


def test_settings_edit_delete_restore_through_the_pages(client, login, admin, org):
    cf = _define(admin, "company", "Tier", "select", options=_options("Gold", "Silver"))
    login("admin")
    page = client.get(f"/settings/fields/company/{cf.id}")
    assert page.status_code == 200 and b"Gold" in page.data
    saved = client.post(
        f"/settings/fields/company/{cf.id}",
        data={
            "label": "Contract tier",
            "type": "select",
            "option_id": [cf.options[0].id, cf.options[1].id, ""],
            "option_label": ["Gold", "Silver", "Bronze"],
            "option_colour": ["yellow", "gray", "orange"],
        },
    )
    assert saved.status_code == 303
    db.session.expire_all()
    fields = CompanyService(admin).custom_fields()
    assert fields[0].label == "Contract tier" and [o.label for o in fields[0].options] == ["Gold", "Silver", "Bronze"]
    assert fields[0].options[0].id == cf.options[0].id
    assert client.post(f"/settings/fields/company/{cf.id}/delete").status_code == 303
    assert b"In the trash" in client.get("/settings/fields?entity=company").data
    assert client.post(f"/settings/fields/company/{cf.id}/restore").status_code == 303
    db.session.expire_all()
    assert CompanyService(admin).custom_fields()[0].key == "tier"


def test_forms_take_the_values_with_inline_errors_and_the_detail_shows_them(client, login, admin, org):
    tier = _define(admin, "company", "Tier", "select", options=_options("Gold", "Silver"))
    _define(admin, "company", "Seats", "number", required=True)
    _define(admin, "company", "Active", "checkbox")
    login("manager")
    form = client.get("/companies/new")
    assert b'name="cf_tier"' in form.data and b'name="cf_seats"' in form.data
    refused = client.post("/companies", data={"name": "Acme", "custom_form": "1", "cf_seats": "lots"})
    assert refused.status_code == 422
    assert b"Enter a number." in refused.data and b'value="lots"' in refused.data
    created = client.post(
        "/companies",
        data={"name": "Acme", "custom_form": "1", "cf_seats": "12", "cf_tier": tier.options[0].id, "cf_active": "yes"},
    )
    assert created.status_code == 303
    company = db.session.query(Company).filter_by(name="Acme").one()
    assert company.custom == {"seats": 12, "tier": tier.options[0].id, "active": True}
    detail = client.get(f"/companies/{company.id}")
    assert b"Gold" in detail.data and b"Seats" in detail.data
    edit = client.get(f"/companies/{company.id}/edit")
    assert b'value="12"' in edit.data
    # inline edit of one value, then a refused one
    saved = client.post(f"/companies/{company.id}/custom/seats", data={"cf_seats": "13"}, headers=HX)
    assert saved.status_code == 200 and b"13" in saved.data and b"Seats saved." in saved.data
    refused = client.post(f"/companies/{company.id}/custom/seats", data={"cf_seats": ""}, headers=HX)
    assert refused.status_code == 422 and b"Seats is required." in refused.data
    assert client.post(f"/companies/{company.id}/custom/nothing", data={}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom["seats"] == 13


def test_deal_form_and_history_show_custom_values(client, login, admin, org, users):
    pipeline = factories.make_pipeline(org)
    stage = factories.stages_of(pipeline)[0]
    cf = _define(admin, "deal", "Renewal date", "date")
    login("admin")
    created = client.post(
        "/deals",
        data={
            "name": "Big",
            "value": "100",
            "currency": "USD",
            "stage_id": str(stage.id),
            "owner_id": str(users["admin"].id),
            "custom_form": "1",
            cf.name: "2026-09-01",
        },
    )
    assert created.status_code == 303, created.data
    deal = db.session.query(Deal).filter_by(name="Big").one()
    assert deal.custom == {"renewal_date": "2026-09-01"}
    client.post(f"/deals/{deal.id}/custom/renewal_date", data={cf.name: "2026-10-01"})
    detail = client.get(f"/deals/{deal.id}")
    assert b"Renewal date" in detail.data and b"2026-10-01" in detail.data
    from crm_web.services.deals import DealService

    lines = [line for item in DealService(admin).readable_history(deal.id) for line in item.lines]
    assert any(line.label == "Renewal date" for line in lines), lines


# --- the column chooser, CSV export, statement budgets -------------------------------------------


def _header_cells(html: str) -> list[str]:
    import re

    head = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return [re.sub(r"<[^>]+>|\s+", " ", cell).strip() for cell in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)][1:-1]


def test_cols_chooses_and_orders_the_columns_custom_ones_included(client, login, admin, org):
    tier = _define(admin, "company", "Tier", "select", options=_options("Gold"))
    CompanyService(admin).create(name="Acme", industry="Tools", custom_input={"tier": tier.options[0].id})
    login("manager")
    default = client.get("/companies").get_data(as_text=True)
    assert _header_cells(default)[:4] == ["Name", "Industry", "City", "Size"]
    chosen = client.get("/companies?cols=name,cf_tier,industry,contacts").get_data(as_text=True)
    assert [c.split(" ")[0] for c in _header_cells(chosen)] == ["Name", "Tier", "Industry", "Contacts"]
    assert "Gold" in chosen and "cols=name,cf_tier,industry,contacts" in chosen  # links keep the choice
    # the name column always comes first; unknown keys (a deleted field) are dropped
    odd = client.get("/companies?cols=industry,cf_gone").get_data(as_text=True)
    assert [c.split(" ")[0] for c in _header_cells(odd)] == ["Name", "Industry"]


def test_the_users_choice_is_stored_per_list_and_used_without_cols(client, login, users, admin, org):
    _define(admin, "company", "Tier", "select", options=_options("Gold"))
    factories.make_company(org)
    factories.make_contact(org)
    login("sales")
    saved = client.post("/companies/columns", data={"col": ["name", "cf_tier", "owner"]})
    assert saved.status_code == 303 and "cols=name,cf_tier,owner" in saved.headers["Location"]
    db.session.expire_all()
    assert users["sales"].list_columns == {"company": ["name", "cf_tier", "owner"]}
    page = client.get("/companies").get_data(as_text=True)
    assert [c.split(" ")[0] for c in _header_cells(page)] == ["Name", "Tier", "Owner"]
    assert [c.split(" ")[0] for c in _header_cells(client.get("/contacts").get_data(as_text=True))][:2] == [
        "Name",
        "Email",
    ]  # another list keeps its defaults
    assert client.post("/companies/columns", data={"col": ["name", "nope"]}).status_code == 400
    client.post("/companies/columns", data={"reset": "1"})
    db.session.expire_all()
    assert users["sales"].list_columns is None


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_export_follows_the_visible_columns_unless_all_are_asked(client, login, admin, org):
    tier = _define(admin, "company", "Tier", "select", options=_options("Gold"))
    _define(admin, "company", "Renewal", "date")
    CompanyService(admin).create(
        name="Acme", industry="Tools", custom_input={"tier": tier.options[0].id, "renewal": "2026-02-03"}
    )
    login("manager")
    visible = _csv(client.get("/companies/export.csv?cols=name,cf_tier,industry"))
    assert visible == [["Name", "Tier", "Industry"], ["Acme", "Gold", "Tools"]]
    every = _csv(client.get("/companies/export.csv?cols=name,cf_tier&all=1"))
    assert every[0][-2:] == ["Tier", "Renewal"] and every[0][0] == "Name" and len(every[0]) > 10
    assert every[1][-2:] == ["Gold", "2026-02-03"]


@pytest.mark.parametrize("path", ["/contacts", "/companies", "/leads", "/deals"])
def test_a_lists_statements_do_not_depend_on_columns_or_custom_fields(client, login, admin, org, count_queries, path):
    entity = {"/contacts": "contact", "/companies": "company", "/leads": "lead", "/deals": "deal"}[path]
    if entity == "deal":
        pipeline = factories.make_pipeline(org)
        for i in range(3):
            factories.make_deal(org, stage=factories.stages_of(pipeline)[0], name=f"D{i}")
    else:
        make = {"contact": factories.make_contact, "company": factories.make_company, "lead": factories.make_lead}
        for _ in range(3):
            make[entity](org)
    login("manager")
    client.get(path)  # warm caches (pipelines)
    with count_queries() as none:
        assert client.get(path).status_code == 200
    for i in range(10):
        _define(admin, entity, f"Field {i}", ["text", "number", "date", "select", "user"][i % 5], options=_options("A"))
    db.session.expire_all()
    keys = ",".join(["name", *(f"cf_field_{i}" for i in range(10))])
    with count_queries() as ten:
        assert client.get(f"{path}?cols={keys}&sort=cf_field_1&f=cf_field_0.isEmpty").status_code == 200
    every_key = ",".join(c.key for c in _all_columns(entity, org))
    with count_queries() as every_column:
        assert client.get(f"{path}?cols={every_key}").status_code == 200
    assert none.count == ten.count == every_column.count, (none, ten, every_column)


def _all_columns(entity, org):
    from crm_web.columns import available

    return available(entity, db.session.get(Organization, org.id).custom_fields)


# --- CSV import --------------------------------------------------------------------------------


def test_import_maps_custom_columns_by_label_validates_them_and_updates_duplicates(admin, users, org, tmp_path):
    from crm_web.imports.service import ImportService, Options

    tier = _define(admin, "company", "Tier", "select", options=_options("Gold", "Silver"))
    _define(admin, "company", "Seats", "number")
    _define(admin, "company", "Rep", "user")
    _define(admin, "company", "Regions", "multi_select", options=_options("North", "South"))
    path = tmp_path / "companies.csv"
    path.write_text(
        "Name,Tier,seats,Rep,Regions\n"
        f'Acme,gold,12,{users["sales"].email},"North, South"\n'
        "Bolt,Platinum,3,,\n"
        "Coil,Silver,many,,\n"
        f"Dyne,,,{users['manager'].name},South\n"
    )
    importer = ImportService(admin)
    job = importer.create_import(str(path), "companies", file_name="companies.csv")
    assert job.mapping["columns"] == ["name", "cf_tier", "cf_seats", "cf_rep", "cf_regions"]
    outcome = importer.run(job.id)
    assert (outcome.created, outcome.errors) == (2, 2)
    reasons = {e.value: e.reason for e in outcome.error_rows}
    assert reasons == {"Platinum": "'Platinum' is not one of the options.", "many": "Enter a number."}
    rows = {c.name: c.custom for c in db.session.query(Company).filter(Company.org_id == org.id)}
    fields = {cf.key: cf for cf in CompanyService(admin).custom_fields()}
    north, south = (o.id for o in fields["regions"].options)
    assert rows == {
        "Acme": {"tier": tier.options[0].id, "seats": 12, "rep": str(users["sales"].id), "regions": [north, south]},
        "Dyne": {"rep": str(users["manager"].id), "regions": [south]},
    }
    # a second file updates the duplicate's given values and keeps the others
    again = tmp_path / "again.csv"
    again.write_text("Name,Seats\nAcme,40\n")
    job = importer.create_import(str(again), "companies", file_name="again.csv", options=Options(on_duplicate="update"))
    assert importer.run(job.id).updated == 1
    db.session.expire_all()
    acme = db.session.query(Company).filter_by(name="Acme").one()
    assert acme.custom["seats"] == 40 and acme.custom["tier"] == tier.options[0].id
    importer.undo(job.id)
    db.session.expire_all()
    assert db.session.get(Company, acme.id).custom["seats"] == 12


def test_an_export_with_every_column_imports_back(client, login, admin, org, tmp_path):
    from crm_web.imports.service import ImportService

    tier = _define(admin, "company", "Tier", "select", options=_options("Gold"))
    _define(admin, "company", "Renewal", "date")
    CompanyService(admin).create(name="Acme", custom_input={"tier": tier.options[0].id, "renewal": "2026-02-03"})
    login("admin")
    exported = client.get("/companies/export.csv?all=1").get_data(as_text=True).lstrip("\ufeff")
    CompanyService(admin).delete_many([c.id for c in db.session.query(Company).filter_by(org_id=org.id)])
    path = tmp_path / "export.csv"
    path.write_text(exported)
    importer = ImportService(admin)
    job = importer.create_import(str(path), "companies", file_name="export.csv")
    assert importer.run(job.id).created == 1
    back = db.session.query(Company).filter(Company.org_id == org.id, Company.deleted_at.is_(None)).one()
    assert back.custom == {"tier": tier.options[0].id, "renewal": "2026-02-03"}


# --- PostgreSQL plans: a field's filter and sort read its index ---------------------------------


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    ("label", "kind", "query"),
    [
        ("Seats", "number", "f=cf_seats.greaterThan.5"),
        ("Seats", "number", "sort=cf_seats"),
        ("Renewal", "date", "f=cf_renewal.between.2026-01-01,2026-03-01"),
        ("Code", "text", "f=cf_code.equals.x"),
        ("Regions", "multi_select", "f=cf_regions.in.{option}"),
    ],
)
def test_filters_and_sorts_by_a_custom_field_use_its_index(client, login, admin, org, label, kind, query):
    from sqlalchemy import event

    from crm_web.services.custom_fields import index_name

    cf = _define(admin, "company", label, kind, options=_options("North") if kind == "multi_select" else [])
    for i in range(5):
        factories.make_company(org, name=f"C{i}")
    if kind == "multi_select":  # a GIN index wins over the name index once the organisation has some rows
        import uuid

        from sqlalchemy import insert
        from sqlalchemy import text as sql_text

        rows = [{"id": uuid.uuid4(), "org_id": org.id, "name": f"Bulk {i}", "version": 1} for i in range(2000)]
        db.session.execute(insert(Company.__table__), rows)
        db.session.execute(sql_text("ANALYZE companies"))
    login("manager")
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        option = cf.options[0].id if cf.options else ""
        assert client.get(f"/companies?{query.format(option=option)}", headers=HX).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    # A filter: the count of the matching rows; a sort: the page of ids.
    wanted = "count(*)" if query.startswith("f=") else "LIMIT"
    statement, parameters = next((s, p) for s, p in captured if "FROM companies" in s and wanted in s)
    cursor = db.session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    finally:
        cursor.close()
    assert index_name(org.id, cf) in plan, plan


@pytest.mark.postgres_only
@pytest.mark.parametrize("sort", ["cf_tier", "-cf_tier"])
def test_a_sort_by_a_custom_field_reads_its_page_in_order_from_the_index_ties_included(client, login, admin, org, sort):
    """A field's btree index ends with the id, the lists' tiebreaker, in the sort's direction: the
    page of ids comes from the index in order (backwards for a descending sort), without sorting the
    rows that share a value (a select's options, the rows without a value; migration 0039)."""
    from sqlalchemy import event

    from crm_web.services.custom_fields import index_name

    cf = _define(admin, "company", "Tier", "select", options=_options("Gold", "Silver"))
    for i in range(6):
        factories.make_company(org, name=f"C{i}", custom={"tier": cf.options[i % 2].id} if i < 4 else None)
    login("manager")
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert client.get(f"/companies?sort={sort}", headers=HX).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, parameters = next((s, p) for s, p in captured if "FROM companies" in s and "LIMIT" in s)
    cursor = db.session.connection().connection.driver_connection.cursor()
    try:
        for setting in ("enable_seqscan", "enable_sort", "enable_incremental_sort", "enable_bitmapscan"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        cursor.close()
    scan = "Index Scan Backward using" if sort.startswith("-") else "Index Scan using"
    assert f"{scan} {index_name(org.id, cf)}" in plan, plan
    assert "Sort" not in plan, plan


def test_a_trashed_field_is_purged_with_the_trash(admin, org):
    from datetime import timedelta

    from crm_web.services.trash import TrashService

    service = CustomFieldService(admin)
    old = _define(admin, "company", "Old")
    recent = _define(admin, "company", "Recent")
    company = CompanyService(admin).create(name="Acme", custom_input={"old": "a", "recent": "b"})
    service.delete("company", old.id)
    service.delete("company", recent.id)
    org_row = db.session.get(Organization, org.id)
    schema = dict(org_row.custom_fields)
    schema["company"] = [
        {**f, "deleted_at": (datetime.now(UTC) - timedelta(days=40)).isoformat()} if f["key"] == "old" else f
        for f in schema["company"]
    ]
    org_row.custom_fields = schema
    db.session.commit()
    result = TrashService(admin).purge_older_than(days=30)
    assert result.counts.get("custom field") == 1
    assert [f.key for f in service.fields("company", trashed=True)] == ["recent"]
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom == {"recent": "b"}


def _activity_columns(html: str) -> list[str]:
    """The activity table's data columns (after the select box and the Done toggle)."""
    return [c.split(" ")[0] for c in _header_cells(html) if c != "Done"]


def test_the_activity_list_has_the_chooser_too(client, login, users, org, count_queries):
    factories.make_activity(org, subject="Call Ada", owner_id=users["sales"].id, type="call")
    login("sales")
    client.get("/activities?view=all")  # the first reads the saved-view tabs and caches them
    with count_queries() as default:
        page = client.get("/activities?view=all").get_data(as_text=True)
    assert _activity_columns(page) == [
        "Subject",
        "Related",
        "Due",
        "Status",
        "Priority",
        "Owner",
    ]
    with count_queries() as chosen:
        page = client.get("/activities?view=all&cols=subject,type,owner").get_data(as_text=True)
    assert _activity_columns(page) == ["Subject", "Type", "Owner"]
    assert default.count == chosen.count
    saved = client.post("/activities/columns?view=all", data={"col": ["subject", "duration"]})
    assert saved.status_code == 303 and "view=all" in saved.headers["Location"]
    page = client.get("/activities?view=all").get_data(as_text=True)
    assert _activity_columns(page) == ["Subject", "Duration"]


def test_board_cards_show_the_custom_fields_the_user_picks(client, login, admin, org, users, count_queries):
    pipeline = factories.make_pipeline(org)
    stage = factories.stages_of(pipeline)[0]
    renewal = _define(admin, "deal", "Renewal date", "date")
    tier = _define(admin, "deal", "Tier", "select", options=_options("Gold"))
    deal = factories.make_deal(org, stage=stage, name="Big")
    from crm_web.services.deals import DealService

    DealService(admin).update(deal.id, custom_input={"renewal_date": "2026-12-01", "tier": tier.options[0].id})
    login("manager")
    path = f"/deals/board?pipeline={pipeline.id}"
    page = client.get(path).get_data(as_text=True)
    assert "Card fields" in page and 'data-card-field="renewal_date"' not in page
    with count_queries() as before:
        client.get(path)
    saved = client.post(f"/deals/board/fields?pipeline={pipeline.id}", data={"field": [renewal.key, "nope"]})
    assert saved.status_code == 303 and saved.headers["Location"].endswith(f"/deals/board?pipeline={pipeline.id}")
    db.session.expire_all()
    assert users["manager"].list_columns == {"board": ["renewal_date"]}
    client.get(path)  # a user's row changed: the first reads the saved-view tabs (owners' names) again
    with count_queries() as after:
        page = client.get(path).get_data(as_text=True)
    assert 'data-card-field="renewal_date"' in page and "Renewal date: 2026-12-01" in page
    assert 'data-card-field="tier"' not in page
    assert before.count == after.count
    # the board filtered by a custom field
    filtered = client.get(f"{path}&f=cf_renewal_date.after.2026-11-01").get_data(as_text=True)
    assert "Big" in filtered
    assert "Big" not in client.get(f"{path}&f=cf_renewal_date.before.2026-11-01").get_data(as_text=True)


def test_labels_options_and_values_are_escaped_everywhere(client, login, admin, org):
    evil = "<img src=x onerror=alert(1)>"
    cf = _define(admin, "company", f"Label {evil}", "select", options=_options(f"Option {evil}"), help=evil)
    _define(admin, "company", "Note", "text")
    company = CompanyService(admin).create(name="Acme", custom_input={cf.key: cf.options[0].id, "note": evil})
    login("admin")
    pages = [
        client.get("/settings/fields?entity=company"),
        client.get(f"/settings/fields/company/{cf.id}"),
        client.get(f"/companies?cols=name,{cf.name},cf_note"),
        client.get(f"/companies/{company.id}"),
        client.get(f"/companies/{company.id}/edit"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert evil not in page.get_data(as_text=True)
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.get_data(as_text=True)


def test_global_search_finds_records_by_their_custom_text_fields(client, login, admin, org, other_org, count_queries):
    """Text, long text, URL and email fields are searched with the record's own columns, in the same
    statement per type; another organisation's fields and values, and other types, are not."""
    from crm_web.services.search import SearchService

    login("admin")
    with count_queries() as without_fields:
        client.get("/search?q=zqnothing")
    _define(admin, "company", "Region")
    _define(admin, "company", "Notes", "long_text")
    _define(admin, "company", "Site", "url")
    _define(admin, "deal", "Billing email", "email")
    _define(admin, "deal", "Seats", "number")
    CompanyService(admin).create(name="Acme", custom_input={"region": "Zqnorth"})
    CompanyService(admin).create(name="Globex", custom_input={"notes": "Met at the zqfair in May"})
    CompanyService(admin).create(name="Initech", custom_input={"site": "https://zqsite.example"})
    CompanyService(admin).create(name="Plain")
    pipeline = factories.make_pipeline(org)
    deal = factories.make_deal(org, stage=factories.stages_of(pipeline)[0], name="Renewal")
    from crm_web.services.deals import DealService

    DealService(admin).update(deal.id, custom_input={"billing_email": "zqpay@example.com", "seats": 12})
    theirs = factories.make_user(other_org, role="admin")
    their_actor = factories.actor_for(theirs)
    CustomFieldService(their_actor).create("company", FieldInput(label="Region", type="text"))
    CompanyService(their_actor).create(name="Theirs", custom_input={"region": "Zqnorth"})

    def found(q, actor=admin):
        return {group.kind: [hit.label for hit in group.hits] for group in SearchService(actor).search(q)}

    assert found("zqnorth") == {"company": ["Acme"]}
    assert found("zqfair") == {"company": ["Globex"]}
    assert found("zqsite") == {"company": ["Initech"]}
    assert found("zqpay") == {"deal": ["Renewal"]}
    assert found("12") == {}  # a number field is not searched
    assert found("zqnorth", their_actor) == {"company": ["Theirs"]}
    page = client.get("/search?q=zqnorth").get_data(as_text=True)
    assert "Acme" in page and "Theirs" not in page
    with count_queries() as with_fields:
        client.get("/search?q=zqnothing")
    assert with_fields.count == without_fields.count


def test_global_search_finds_words_the_json_escapes_in_custom_text_fields(admin):
    """On SQLite a word the JSON holds as typed is first looked for in the custom values' JSON text;
    the JSON escapes quotes, backslashes and (as Python writes it) every non-ASCII letter, so words
    holding those are matched on the values alone. Both ways find the same records on both engines,
    and a word only in the JSON's keys or in another field's value finds nothing."""
    from crm_web.services.search import SearchService

    _define(admin, "company", "Region")
    _define(admin, "company", "Seats", "number")
    CompanyService(admin).create(name="Acme", custom_input={"region": 'Zqsay "zqquote" café C:\\zqdir'})
    CompanyService(admin).create(name="Globex", custom_input={"seats": 4071})

    def found(q):
        return {group.kind: [hit.label for hit in group.hits] for group in SearchService(admin).search(q)}

    for q in ["zqsay", "ZQQUOTE", '"zqquote"', "café", "zqsay café", "C:\\zqdir", "zqdir", "zq", "Zq zqdir"]:
        assert found(q) == {"company": ["Acme"]}, q
    for q in ["region", "seats", "4071", "zqquote zqnone", "caf\\u00e9", "u00e9"]:
        assert found(q) == {}, q


def test_deleted_fields_are_on_the_trash_page_restored_and_purged_by_admins(
    client, login, admin, org, other_org, count_queries
):
    tier = _define(admin, "company", "Tier", "select", options=_options("Gold"))
    region = _define(admin, "deal", "Region")
    company = CompanyService(admin).create(name="Acme", custom_input={"tier": "Gold"})
    service = CustomFieldService(admin)
    login("admin")
    with count_queries() as before:
        client.get("/trash")
    service.delete("company", tier.id)
    service.delete("deal", region.id)
    theirs = factories.actor_for(factories.make_user(other_org, role="admin"))
    CustomFieldService(theirs).delete("contact", _define(theirs, "contact", "Their field").id)
    with count_queries() as after:
        page = client.get("/trash").get_data(as_text=True)
    assert before.count == after.count  # the definitions come with the organisation's row
    assert 'data-field="company:tier"' in page and 'data-field="deal:region"' in page
    assert "Their field" not in page and "Delete permanently" in page
    # managers look; sales may not open the trash at all
    login("manager")
    page = client.get("/trash").get_data(as_text=True)
    assert 'data-field="company:tier"' in page and "Delete permanently" not in page
    assert client.post(f"/settings/fields/company/{tier.id}/restore", data={"back": "trash"}).status_code == 403
    login("sales")
    assert client.get("/trash").status_code == 403
    # an admin restores from the trash page and comes back to it; the values are back
    login("admin")
    restored = client.post(f"/settings/fields/company/{tier.id}/restore", data={"back": "trash"})
    assert restored.status_code == 303 and restored.headers["Location"].endswith("/trash")
    db.session.expire_all()
    assert [f.key for f in service.fields("company")] == ["tier"]
    assert 'data-field="company:tier"' not in client.get("/trash").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom == {"tier": tier.options[0].id}
    # the purge button posts with htmx (its confirmation) and navigates back to the trash
    purged = client.post(f"/settings/fields/deal/{region.id}/purge", data={"back": "trash"}, headers=HX)
    assert purged.status_code == 204 and "/trash" in purged.headers["HX-Location"]
    db.session.expire_all()
    assert service.fields("deal", trashed=True) == []
    page = client.get("/trash").get_data(as_text=True)
    assert 'id="trashed-fields"' not in page and "gone for good" in page


def test_a_user_field_shows_the_users_name_on_board_cards_in_the_same_statements(
    client, login, admin, org, users, count_queries
):
    from crm_web.services.deals import DealService

    pipeline = factories.make_pipeline(org)
    stage = factories.stages_of(pipeline)[0]
    big = factories.make_deal(org, stage=stage, name="Big")
    small = factories.make_deal(org, stage=stage, name="Small")
    path = f"/deals/board?pipeline={pipeline.id}"
    login("manager")
    client.get(path)  # the column totals cached
    with count_queries() as without_field:
        client.get(path)
    champion = _define(admin, "deal", "Champion", "user")
    DealService(admin).update(big.id, custom_input={"champion": str(users["sales"].id)})
    DealService(admin).update(small.id, custom_input={"champion": str(users["manager"].id)})
    client.post(f"/deals/board/fields?pipeline={pipeline.id}", data={"field": [champion.key]})
    client.get(path)
    with count_queries() as with_field:
        page = client.get(path).get_data(as_text=True)
    assert f"Champion: {users['sales'].name}" in page and f"Champion: {users['manager'].name}" in page
    assert without_field.count == with_field.count
    # "load more" of a column names them too
    more = client.get(f"/deals/board/column/{stage.id}?pipeline={pipeline.id}&offset=0", headers=HX)
    assert f"Champion: {users['sales'].name}" in more.get_data(as_text=True)


def test_the_index_command_creates_every_missing_field_index(app, admin, org):
    from sqlalchemy import text

    from crm_web.services.custom_fields import index_name

    cf = _define(admin, "deal", "Renewal date", "date")
    runner = app.test_cli_runner()
    if db.engine.dialect.name != "postgresql":
        result = runner.invoke(args=["crm", "custom-field-indexes"])
        assert result.exit_code == 0 and "PostgreSQL only" in result.output
        return
    name = index_name(org.id, cf)

    def exists():
        return db.session.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = :name"), {"name": name}) == 1

    assert exists()
    db.session.execute(text(f'DROP INDEX "{name}"'))  # as if the web role could not create it
    db.session.commit()
    assert not exists()
    result = runner.invoke(args=["crm", "custom-field-indexes"])
    assert result.exit_code == 0, result.output
    assert "Every custom field has its index (1 field(s))." in result.output
    assert exists()


def test_a_text_field_has_a_trigram_index_for_the_search_until_it_is_trashed(app, admin, org):
    """Text types get the trigram index the global search's conditions use (PostgreSQL), created with
    the field and by the index command, dropped in the trash and by a purge; other types get none."""
    from sqlalchemy import text

    from crm_web.services.custom_fields import search_index_name

    region = _define(admin, "contact", "Region")
    notes = _define(admin, "deal", "Notes", "long_text")
    seats = _define(admin, "deal", "Seats", "number")
    if db.engine.dialect.name != "postgresql":
        return
    org_id = org.id

    def definition(cf):
        return db.session.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"), {"name": search_index_name(org_id, cf)}
        )

    assert "gin (lower((custom ->> 'region'::text)) gin_trgm_ops)" in definition(region)
    assert f"WHERE ((org_id = '{org_id}'::uuid) AND (deleted_at IS NULL))" in definition(region)
    assert definition(notes) is not None and definition(seats) is None
    db.session.execute(text(f'DROP INDEX "{search_index_name(org_id, region)}"'))  # as if the role could not
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "custom-field-indexes"])
    assert result.exit_code == 0, result.output
    assert definition(region) is not None
    service = CustomFieldService(admin)
    service.update("contact", region.id, FieldInput(label="Region", type="number"))  # no longer text
    assert definition(region) is None
    service.delete("deal", notes.id)
    assert definition(notes) is None
    service.restore("deal", notes.id)
    assert definition(notes) is not None
    service.delete("deal", notes.id)
    service.purge("deal", notes.id)
    assert definition(notes) is None


def test_a_field_with_a_btree_index_has_statistics_on_its_value_until_it_is_trashed(app, admin, org):
    """PostgreSQL takes no selectivity from a partial index's statistics: each field with a btree index
    has extended statistics on the same expression (created with the field and by the index command,
    dropped in the trash), so the planner knows how many rows a condition on it keeps; a multi select
    (a GIN index) has none."""
    from sqlalchemy import text

    from crm_web.services.custom_fields import statistics_name

    tier = _define(admin, "deal", "Tier")
    seats = _define(admin, "deal", "Seats", "number")
    if db.engine.dialect.name != "postgresql":
        return
    org_id = org.id

    def expressions(cf):
        return db.session.scalar(
            text("SELECT pg_get_statisticsobjdef_expressions(oid)::text FROM pg_statistic_ext WHERE stxname = :name"),
            {"name": statistics_name(org_id, cf)},
        )

    assert expressions(tier) == "{\"(custom ->> 'tier'::text)\"}", expressions(tier)
    assert "(custom ->> 'seats'::text))::numeric" in expressions(seats), expressions(seats)
    db.session.execute(text(f'DROP STATISTICS "{statistics_name(org_id, tier)}"'))  # as if the role could not
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "custom-field-indexes"])
    assert result.exit_code == 0, result.output
    assert expressions(tier) is not None
    service = CustomFieldService(admin)
    service.delete("deal", tier.id)
    assert expressions(tier) is None
    service.restore("deal", tier.id)
    assert expressions(tier) is not None


def test_the_board_reads_the_organisation_s_fields_once_per_request_not_per_card(
    client, login, admin, org, monkeypatch
):
    """Every card asks which fields it shows (templating.board_fields): the organisation's schema is
    parsed once per request, whatever the number of cards; a field defined since shows at once."""
    import crm_web.custom_fields as custom_fields_module

    pipeline = factories.make_pipeline(org)
    stage = factories.stages_of(pipeline)[0]
    _define(admin, "deal", "Seats", "number")
    login("manager")
    path = f"/deals/board?pipeline={pipeline.id}"
    parsed: list[str] = []
    real = custom_fields_module.live_fields

    def counting(schema, entity_name):
        parsed.append(entity_name)
        return real(schema, entity_name)

    monkeypatch.setattr(custom_fields_module, "live_fields", counting)
    counts = []
    for more in (1, 11):
        for _ in range(more):
            factories.make_deal(org, stage=stage)
        parsed.clear()
        assert client.get(path).status_code == 200
        counts.append(parsed.count("deal"))
    assert counts[0] == counts[1] <= 2, counts
    _define(admin, "deal", "Region")
    assert "Region" in client.get(path).get_data(as_text=True)

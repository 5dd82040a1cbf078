"""CSV import: reading files, the header guess, validation by the forms' and services' rules,
duplicates, related records by name, the run, Undo import, per-organisation isolation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_web.errors import PermissionDenied
from crm_web.extensions import db
from crm_web.imports.fields import guess_mapping, spec_for
from crm_web.imports.reading import CsvReader, UnreadableFile, detect_format
from crm_web.imports.service import ImportService, Options
from crm_web.models import (
    Activity,
    Company,
    Contact,
    Deal,
    Import,
    Lead,
    RecordHistory,
    SearchWord,
    Tag,
    contact_tags,
    utcnow,
)
from tests import factories

DATA = Path(__file__).parent / "data" / "import"


@pytest.fixture
def importer(actor):
    return ImportService(actor)


def copy(tmp_path, name: str) -> str:
    target = tmp_path / name
    shutil.copy(DATA / name, target)
    return str(target)


def run(importer, tmp_path, name: str, entity: str = "contacts", **options):
    job = importer.create_import(copy(tmp_path, name), entity, file_name=name, options=Options(**options))
    return job, importer.run(job.id)


def live(model, org):
    return db.session.scalar(
        select(func.count()).select_from(model).where(model.org_id == org.id, model.deleted_at.is_(None))
    )


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter"),
    [
        ("contacts_utf8.csv", "utf-8", ","),
        ("contacts_utf8_bom.csv", "utf-8-sig", ","),
        ("contacts_utf16.csv", "utf-16", ","),
        ("contacts_cp1252_semicolon.csv", "cp1252", ";"),
        ("contacts_tab.csv", "utf-8", "\t"),
        ("contacts_pipe.csv", "utf-8", "|"),
    ],
)
def test_encoding_and_delimiter_are_detected(name, encoding, delimiter):
    fmt = detect_format(DATA / name)
    assert (fmt.encoding, fmt.delimiter) == (encoding, delimiter)
    with CsvReader(DATA / name) as reader:
        assert reader.header[0].lower().startswith("first")
        rows = list(reader.rows())
    assert len(rows) >= 2


def test_windows_1252_accents_are_read():
    with CsvReader(DATA / "contacts_cp1252_semicolon.csv") as reader:
        rows = [cells for _, cells in reader.rows()]
    assert rows[0][:2] == ["José", "Müller"] and rows[2][1] == "Œuvre"


def test_quoted_newlines_and_delimiters_stay_in_their_cell():
    with CsvReader(DATA / "contacts_quoted_newlines.csv") as reader:
        rows = list(reader.rows())
    assert [line for line, _ in rows] == [2, 4]
    assert rows[0][1][3] == "first line\nsecond line, with a comma"
    assert rows[1][1][1] == "Hopper, Jr." and rows[1][1][3] == 'She said "hi"'


@pytest.mark.parametrize(
    ("name", "message"),
    [("empty.csv", "empty"), ("binary.csv", "not a text file")],
)
def test_unreadable_files_say_why(name, message):
    with pytest.raises(UnreadableFile, match=message):
        CsvReader(DATA / name)


def test_header_guess_knows_other_crms_and_our_export():
    contact = spec_for("contacts")
    assert guess_mapping(contact, ["First Name", "E-mail Address", "Organization", "Deals", "Mystery"]) == [
        "first_name",
        "email",
        "company",
        "",
        "",
    ]
    assert guess_mapping(spec_for("deals"), ["Deal Value", "Expected close date", "Deal Name"]) == [
        "value",
        "expected_close_date",
        "name",
    ]
    assert guess_mapping(contact, contact.entity.csv_header())[:9] == [
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "company",
        "owner",
        "status",
        "tags",
    ]


def test_duplicate_headers_map_the_first_column_only():
    assert guess_mapping(spec_for("contacts"), ["Email", "First name", "Email"]) == ["email", "first_name", ""]


# --- dry run ---------------------------------------------------------------------------------


def test_dry_run_validates_every_row_with_the_forms_rules_and_writes_nothing(importer, org, tmp_path):
    errors_path = str(tmp_path / "errors.csv")
    outcome = importer.dry_run(str(DATA / "invalid_values.csv"), "contacts", errors_path=errors_path)
    assert outcome.rows == 11
    assert outcome.errors == 8
    assert outcome.created == 3
    reasons = {(e.line, e.column): e.reason for e in outcome.error_rows}
    assert "First name" in reasons[(2, "First name")] or reasons[(2, "First name")]
    assert (3, "Email") in reasons and (4, "Status") in reasons and (5, "Birthday") in reasons
    assert (6, "LinkedIn") in reasons and (7, "Do not contact") in reasons and (8, "Owner") in reasons
    assert (9, "Email") in reasons
    assert live(Contact, org) == 0
    lines = Path(errors_path).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].endswith(",error") and len(lines) == 9
    assert outcome.preview[0].action == "error" and len(outcome.preview) == 11


def test_header_only_file_has_nothing_to_do(importer):
    outcome = importer.dry_run(str(DATA / "header_only.csv"), "contacts")
    assert (outcome.rows, outcome.created, outcome.errors) == (0, 0, 0)


def test_ragged_rows_are_errors_naming_their_line(importer):
    outcome = importer.dry_run(str(DATA / "ragged.csv"), "contacts")
    assert outcome.created == 2 and outcome.errors == 1
    assert outcome.error_rows[0].line == 3 and "4 cells" in outcome.error_rows[0].reason


def test_choices_accept_labels_values_and_synonyms(importer, org, tmp_path):
    run(importer, tmp_path, "contacts_cp1252_semicolon.csv")
    statuses = dict(db.session.execute(select(Contact.email, Contact.status).where(Contact.org_id == org.id)).all())
    assert statuses == {
        "jose@example.com": "customer",
        "renee@example.com": "customer",
        "francois@example.com": "prospect",
    }


# --- the run -----------------------------------------------------------------------------------


def test_a_role_under_the_tenant_policies_writes_a_batch_without_copy(importer, org, tmp_path, monkeypatch):
    # COPY FROM refuses tables with row-level security: on PostgreSQL the web role's batch of a table
    # is one INSERT from a JSON document (so its statement triggers run once), on SQLite executemany.
    from crm_web.services import batch_insert

    monkeypatch.setattr(batch_insert, "may_copy", lambda session: False)
    job, outcome = run(importer, tmp_path, "contacts_utf8.csv")
    assert outcome.summary() == "created 3, updated 0, skipped 0, errors 0"
    ada = db.session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
    assert ada.import_id == job.id and ada.status == "customer" and ada.created_at is not None
    assert ada.created_at.tzinfo is not None and abs((utcnow() - ada.created_at).total_seconds()) < 600
    assert ada.phone == "+44 1" and ada.custom is None and ada.do_not_contact is False
    links = db.session.scalar(select(func.count()).select_from(contact_tags).where(contact_tags.c.contact_id == ada.id))
    assert links == 2
    # The history entry's changes are a JSON object (not its text), as a per-row INSERT stores them.
    entry = db.session.scalar(select(RecordHistory).where(RecordHistory.entity_id == ada.id))
    assert entry.changes == {"import": "contacts_utf8.csv", "import_id": str(job.id)}
    assert entry.entity_label == "Ada Lovelace" and entry.action == "created"
    if db.session.get_bind().dialect.name == "postgresql":  # the search vocabulary's insert trigger ran
        words = set(db.session.scalars(select(SearchWord.word).where(SearchWord.org_id == org.id)))
        assert {"ada", "lovelace", "grace", "hopper", "analytical", "engines"} <= words


def test_a_trashed_record_is_not_a_duplicate(importer, org, tmp_path):
    trashed = factories.make_contact(org, first_name="Gone", email="ADA@example.com")
    trashed.deleted_at = utcnow()
    db.session.commit()
    _, outcome = run(importer, tmp_path, "contacts_utf8.csv", on_duplicate="update")
    assert (outcome.created, outcome.updated, outcome.duplicates) == (3, 0, 0)
    assert db.session.get(Contact, trashed.id).first_name == "Gone"


def test_run_creates_records_companies_and_tags(importer, org, tmp_path):
    job, outcome = run(importer, tmp_path, "contacts_utf8.csv")
    assert outcome.summary() == "created 3, updated 0, skipped 0, errors 0"
    assert live(Contact, org) == 3
    companies = db.session.scalars(select(Company.name).where(Company.org_id == org.id)).all()
    assert sorted(companies) == ["Analytical Engines", "Navy"]  # matched case-insensitively
    ada = db.session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
    assert ada.import_id == job.id and ada.status == "customer"
    tags = db.session.scalars(
        select(Tag.name).join(contact_tags, contact_tags.c.tag_id == Tag.id).where(contact_tags.c.contact_id == ada.id)
    ).all()
    assert sorted(tags) == ["math", "vip"]
    job = importer.get(job.id)
    assert (job.status, job.rows_done, job.total_rows, job.created_count) == ("done", 3, 3, 3)


def test_formulas_and_html_are_stored_as_text(importer, org, tmp_path):
    run(importer, tmp_path, "invalid_values.csv")
    names = set(db.session.scalars(select(Contact.first_name).where(Contact.org_id == org.id)))
    assert '=HYPERLINK("http://evil")' in names and "<b>Bold</b>" in names


def test_duplicates_in_the_file_and_against_the_database(importer, org, tmp_path):
    factories.make_contact(org, first_name="Existing", email="EXISTING@example.com", phone="000")
    _, outcome = run(importer, tmp_path, "duplicates.csv", on_duplicate="skip")
    assert (outcome.created, outcome.skipped, outcome.duplicates) == (1, 2, 2)
    _, outcome = run(importer, tmp_path, "duplicates.csv", on_duplicate="update")
    # ada@ now exists from the first run: updated; its in-file twin skipped; existing@ updated.
    assert (outcome.created, outcome.updated, outcome.skipped) == (0, 2, 1)
    existing = db.session.scalar(select(Contact).where(func.lower(Contact.email) == "existing@example.com"))
    assert existing.phone == "333" and existing.first_name == "Existing"


def test_create_anyway_creates_duplicates(importer, org, tmp_path):
    factories.make_contact(org, first_name="Existing", email="existing@example.com")
    _, outcome = run(importer, tmp_path, "duplicates.csv", on_duplicate="create")
    assert outcome.created == 3 and live(Contact, org) == 4


def test_companies_match_on_name_or_website_domain(importer, org, tmp_path):
    _, outcome = run(importer, tmp_path, "companies.csv", "companies")
    names = set(db.session.scalars(select(Company.name).where(Company.org_id == org.id)))
    assert names == {"Initech"}
    assert outcome.duplicates == 2 and outcome.errors == 2  # negative employees, unknown size


def test_deals_go_to_their_stage_by_name(importer, org, tmp_path):
    factories.make_pipeline(org)
    _, outcome = run(importer, tmp_path, "deals.csv", "deals")
    assert outcome.created == 2 and outcome.errors == 3
    won = db.session.scalar(select(Deal).where(Deal.name == "Won one"))
    assert won.status == "won" and won.closed_at is not None
    big = db.session.scalar(select(Deal).where(Deal.name == "Big one"))
    assert str(big.value) == "1000.00" and big.company_id is not None and big.status == "open"


def test_leads_and_activities(importer, org, tmp_path):
    _, outcome = run(importer, tmp_path, "leads.csv", "leads")
    assert (outcome.created, outcome.errors) == (1, 1)
    assert db.session.scalar(select(Lead.source).where(Lead.email == "linus@example.com")) == "website"
    run(importer, tmp_path, "contacts_utf8.csv")
    _, outcome = run(importer, tmp_path, "activities.csv", "activities")
    assert (outcome.created, outcome.errors) == (2, 1)
    ada = db.session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
    assert db.session.scalar(select(Activity.contact_id).where(Activity.subject == "Call Ada")) == ada.id


def test_another_orgs_records_are_never_matched_or_linked(importer, org, other_org, tmp_path):
    factories.make_contact(other_org, first_name="Secret", email="secret@globex.example")
    factories.make_company(other_org, name="Globex Secret Co")
    _, outcome = run(importer, tmp_path, "other_org_emails.csv", on_duplicate="update")
    assert (outcome.created, outcome.updated) == (1, 0)
    mine = db.session.scalar(select(Contact).where(Contact.org_id == org.id))
    company = db.session.get(Company, mine.primary_company_id)
    assert company.org_id == org.id
    assert live(Contact, other_org) == 1 and live(Company, other_org) == 1


# --- undo ---------------------------------------------------------------------------------------


def test_undo_trashes_what_was_created_and_reverts_what_was_updated(importer, org, tmp_path):
    existing = factories.make_contact(org, first_name="Existing", email="existing@example.com", phone="000")
    job, _ = run(importer, tmp_path, "duplicates.csv", on_duplicate="update")
    assert db.session.get(Contact, existing.id).phone == "333"
    trashed = importer.undo(job.id)
    assert trashed["contacts"] == 1
    db.session.expire_all()
    assert db.session.get(Contact, existing.id).phone == "000"
    assert live(Contact, org) == 1
    assert importer.get(job.id).status == "undone"


def test_undo_after_a_contact_import_that_created_companies(importer, org, tmp_path):
    job, _ = run(importer, tmp_path, "contacts_utf8.csv")
    assert importer.undo(job.id) == {"activities": 0, "deals": 0, "contacts": 3, "leads": 0, "companies": 2}
    assert live(Contact, org) == 0 and live(Company, org) == 0


def test_a_failed_run_keeps_nothing_and_says_where_it_stopped(importer, org, tmp_path, monkeypatch):
    from crm_web.imports import service

    monkeypatch.setattr(service, "BATCH", 1)
    original = service._Run._write
    calls = []

    def failing(self, rows):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return original(self, rows)

    monkeypatch.setattr(service._Run, "_write", failing)
    job = importer.create_import(copy(tmp_path, "contacts_utf8.csv"), "contacts", file_name="x.csv")
    with pytest.raises(RuntimeError):
        importer.run(job.id)
    job = importer.get(job.id)
    assert job.status == "failed" and "line 3" in job.message
    assert live(Contact, org) == 0
    assert db.session.scalar(select(func.count()).select_from(Contact).where(Contact.org_id == org.id)) == 0


# --- who may import ------------------------------------------------------------------------


def test_sales_import_only_when_the_org_allows_and_into_their_ownership(org, users, tmp_path):
    sales = ImportService(factories.actor_for(users["sales"]))
    with pytest.raises(PermissionDenied):
        sales.dry_run(str(DATA / "contacts_utf8.csv"), "contacts")
    org.sales_can_import = True
    db.session.commit()
    job, _ = run(sales, tmp_path, "contacts_utf8.csv")
    owners = set(db.session.scalars(select(Contact.owner_id).where(Contact.import_id == job.id)))
    assert owners == {users["sales"].id}


def test_sales_updates_only_their_own_records(org, users, tmp_path):
    org.sales_can_import = True
    db.session.commit()
    factories.make_contact(
        org, first_name="Existing", email="existing@example.com", phone="000", owner_id=users["admin"].id
    )
    sales = ImportService(factories.actor_for(users["sales"]))
    _, outcome = run(sales, tmp_path, "duplicates.csv", on_duplicate="update")
    assert outcome.updated == 0 and outcome.skipped == 2
    assert db.session.scalar(select(Contact.phone).where(Contact.email == "existing@example.com")) == "000"


def test_history_lists_the_imports(importer, tmp_path):
    job, _ = run(importer, tmp_path, "contacts_pipe.csv")
    history = importer.history()
    assert history[0][0].id == job.id and db.session.get(Import, job.id).file_name == "contacts_pipe.csv"


# --- round trip, trash, tallies ------------------------------------------------------------------


def _export(entity_name: str, org, user) -> list[list[str]]:
    """The entity's CSV export of `org`, as the cells a spreadsheet would show."""
    import csv
    import io

    from crm_web.csv_export import iter_csv
    from crm_web.entities import entity
    from crm_web.services.companies import CompanyService
    from crm_web.services.contacts import ContactService

    declared = entity(entity_name)
    service = {"contact": ContactService, "company": CompanyService}[entity_name](factories.actor_for(user))
    text = "".join(iter_csv(declared.csv_header(), (declared.csv_values(r) for r in service.export_rows(sort="email"))))
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_export_then_import_into_an_empty_org_gives_the_same_export(org, users, tmp_path):
    from crm_web.services.contacts import ContactService

    owner = users["admin"]
    company = factories.make_company(org, name="Round Trip Ltd")
    for i, status in enumerate(("customer", "lead", "churned")):
        contact = factories.make_contact(
            org,
            first_name=f"Person{i}",
            last_name="=SUM(A1)" if i == 0 else f"Last{i}",
            email=f"p{i}@roundtrip.example",
            status=status,
            owner_id=owner.id,
            primary_company_id=company.id if i < 2 else None,
        )
        ContactService(factories.actor_for(owner)).bulk_add_tag(
            [contact.id], tag_id=factories.make_tag(org, name=f"tag{i}").id
        )
    exported = _export("contact", org, owner)
    path = tmp_path / "export.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        import csv

        csv.writer(f).writerows(exported)
    empty = factories.make_org("empty")
    twin = factories.make_user(empty, role="admin", name=owner.name)
    service = ImportService(factories.actor_for(twin))
    job = service.create_import(str(path), "contacts", file_name="export.csv")
    outcome = service.run(job.id)
    assert (outcome.created, outcome.errors) == (3, 0)
    assert _export("contact", empty, twin) == exported


def test_undone_records_are_in_the_trash_and_restorable(importer, org, users, tmp_path):
    from crm_web.services.trash import TrashService

    job, _ = run(importer, tmp_path, "contacts_utf8.csv")
    importer.undo(job.id)
    trash = TrashService(factories.actor_for(users["admin"])).list_trash(entity_type="contact")
    assert trash.total == 3
    assert live(Contact, org) == 0


def test_deal_tallies_and_search_see_the_imported_rows(importer, org, users, tmp_path):
    from crm_web.services.contacts import ContactService
    from crm_web.services.stats.tallies import deal_groups

    factories.make_pipeline(org)
    run(importer, tmp_path, "deals.csv", "deals")
    groups = deal_groups(db.session, org.id)
    assert sum(g.deals for g in groups) == 2
    assert sum(g.value for g in groups) == 1500
    assert {g.status for g in groups} == {"open", "won"}
    run(importer, tmp_path, "contacts_utf8.csv")
    found = ContactService(factories.actor_for(users["admin"])).list_page(q="Lovelace")
    assert [row.contact.email for row in found.items] == ["ada@example.com"]


def test_an_import_whose_worker_died_is_failed_and_cleaned_up(importer, org, tmp_path, monkeypatch):
    from datetime import timedelta

    from crm_web.imports import service
    from crm_web.models import utcnow

    monkeypatch.setattr(service, "BATCH", 2)
    original = service._Run._write
    calls = []

    def dies(self, rows):  # the process stops after its first batch: nothing after it runs
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit
        return original(self, rows)

    monkeypatch.setattr(service._Run, "_write", dies)
    job = importer.create_import(copy(tmp_path, "contacts_utf8.csv"), "contacts", file_name="x.csv")
    with pytest.raises(SystemExit):
        importer.run(job.id)
    db.session.rollback()
    assert importer.get(job.id).status == "running" and live(Contact, org) == 2
    assert importer.recover_stale() == []  # still fresh
    assert importer.recover_stale(now=utcnow() + timedelta(minutes=11)) == [job.id]
    job = importer.get(job.id)
    assert job.status == "failed" and "row 3" in job.message and live(Contact, org) == 0


def test_the_mapping_is_remembered_for_the_next_file_with_the_same_headers(importer, tmp_path):
    first = importer.upload(copy(tmp_path, "contacts_cp1252_semicolon.csv"), "contacts", file_name="a.csv")
    assert first.mapping["remembered"] is False
    edited = ["first_name", "last_name", "email", "", "notes"]
    importer.configure(first.id, mapping=edited, options=Options())
    second = importer.upload(copy(tmp_path, "contacts_cp1252_semicolon.csv"), "contacts", file_name="b.csv")
    assert second.mapping["remembered"] is True and second.mapping["columns"] == edited
    other = importer.upload(copy(tmp_path, "contacts_utf8.csv"), "contacts", file_name="c.csv")
    assert other.mapping["remembered"] is False

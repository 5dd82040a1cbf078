"""Concurrent saves of one record: the later save either wins cleanly or is told the record changed
(409), never a silent overwrite (docs/design.md, "Concurrent edits").

- Within one request window: optimistic locking on the `version` column (StaleDataError -> Conflict).
- Across minutes: every full edit form posts the version it was rendered with; a stale one is shown
  again (409) with the typed values, who changed the record and when, Reload and Save anyway.
- Inline field edits post the value they showed: only a change of that same field is a conflict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest

from crm_web.errors import Conflict
from crm_web.extensions import db
from crm_web.forms import DAMAGED_VERSION, conflict_message
from crm_web.models import Activity, Company, Contact, Deal, Lead, Pipeline
from crm_web.services.base import Actor
from crm_web.services.board import BoardService
from crm_web.services.conflicts import same_value
from crm_web.services.contacts import ContactService
from tests import factories
from tests.conftest import HX


def test_two_users_editing_the_same_contact(users, org):
    contact = factories.make_contact(org, first_name="Ada", title="CEO")
    mine = ContactService(Actor.of(users["manager"]))
    loaded = mine.get(contact.id)  # this user's copy: version 1
    assert loaded.version == 1
    # The other user's save lands first (another session: a plain UPDATE that bumps the version).
    db.session.execute(
        Contact.__table__.update()
        .where(Contact.__table__.c.id == contact.id)
        .values(title="CTO", version=Contact.__table__.c.version + 1)
    )
    with pytest.raises(Conflict):
        mine.update(contact.id, title="CFO")


# --- a browser's view of a form ------------------------------------------------------------------


class FormValues(HTMLParser):
    """What a browser posts for the form with id `form_id`: inputs (checked boxes only), the selected
    option of each select (else its first), textareas; submit buttons are left out."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.values = form_id, False, {}
        self._select: str | None = None
        self._first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type", "text") not in ("submit", "button"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.values[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select, self._first = name, None
        elif tag == "option" and self._select:
            if self._first is None:
                self._first = a.get("value", "")
            if "selected" in a:
                self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            self.values.setdefault(self._select, self._first or "")
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data


def form_values(html: str, form_id: str) -> dict[str, str]:
    parser = FormValues(form_id)
    parser.feed(html)
    assert parser.values, f"no #{form_id} in the page"
    return dict(parser.values)


# --- the five edit forms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str
    model: type
    make: Callable[[Any], Any]
    url: str  # the record's update URL; + "/edit" is its form
    form_id: str
    field: str  # a text input both users change


def _make_deal(org: Any) -> Deal:
    return factories.make_deal(org, pipeline=factories.make_pipeline(org), name="Original")


CASES = [
    Case(
        "contact",
        Contact,
        lambda org: factories.make_contact(org, title="Original"),
        "/contacts/{id}",
        "contact-form",
        "title",
    ),
    Case(
        "company",
        Company,
        lambda org: factories.make_company(org, industry="Original"),
        "/companies/{id}",
        "company-form",
        "industry",
    ),
    Case("lead", Lead, lambda org: factories.make_lead(org, title="Original"), "/leads/{id}", "lead-form", "title"),
    Case("deal", Deal, _make_deal, "/deals/{id}", "deal-form", "name"),
    Case(
        "activity",
        Activity,
        lambda org: factories.make_activity(org, subject="Original"),
        "/activities/{id}",
        "activity-form",
        "subject",
    ),
]


@pytest.fixture
def jane(org):
    return factories.make_user(org, role="manager", name="Jane Doe")


def _open_form(client, case: Case, record: Any) -> dict[str, str]:
    page = client.get(case.url.format(id=record.id) + "/edit")
    assert page.status_code == 200, page.text[:300]
    return form_values(page.text, case.form_id)


def _stored(case: Case, record: Any) -> tuple[Any, int]:
    db.session.expire_all()
    row = db.session.get(case.model, record.id)
    return getattr(row, case.field), row.version


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_stale_edit_form_is_refused_and_keeps_the_typed_values(case, client, login, org, users, jane):
    record = case.make(org)
    url = case.url.format(id=record.id)
    login("admin")
    stale = _open_form(client, case, record)
    assert stale["version"] == "1"
    # Jane opens the same form later and saves first: a fresh form saves fine.
    login(jane)
    theirs = _open_form(client, case, record)
    theirs[case.field] = "Their value"
    assert client.post(url, data=theirs).status_code == 303
    assert _stored(case, record) == ("Their value", 2)

    login("admin")
    stale[case.field] = "My value"
    refused = client.post(url, data=stale)
    assert refused.status_code == 409
    assert re.search(rf"Jane Doe changed this {case.kind} at \d\d:\d\d UTC, after you opened it", refused.text)
    assert 'value="My value"' in refused.text  # the typed edits are still in the form
    assert f'href="{url}/edit"' in refused.text and "Reload the latest version" in refused.text
    assert "Save anyway" in refused.text and "<html" in refused.text
    assert _stored(case, record) == ("Their value", 2)  # Jane's save stands

    fragment = client.post(url, data=stale, headers=HX)  # htmx: the form swapped in place, like a 422
    assert fragment.status_code == 409 and "<html" not in fragment.text and "HX-Retarget" not in fragment.headers
    assert f'id="{case.form_id}"' in fragment.text and "Jane Doe changed" in fragment.text
    assert 'value="My value"' in fragment.text

    # Save anyway: the re-rendered form carries the current version, so it overwrites on purpose.
    again = form_values(refused.text, case.form_id)
    assert again["version"] == "2" and again[case.field] == "My value"
    assert client.post(url, data=again).status_code == 303
    assert _stored(case, record) == ("My value", 3)


def test_own_save_in_another_tab_is_named_as_such(client, login, org):
    case = CASES[0]
    contact = case.make(org)
    login("admin")
    first, second = _open_form(client, case, contact), _open_form(client, case, contact)
    first["title"], second["title"] = "Tab one", "Tab two"
    assert client.post(f"/contacts/{contact.id}", data=first).status_code == 303
    refused = client.post(f"/contacts/{contact.id}", data=second)
    assert refused.status_code == 409 and "You changed this contact in another tab or window at" in refused.text


def test_a_board_move_makes_an_open_deal_form_stale(client, login, org, users, jane):
    case = CASES[3]
    deal = case.make(org)
    login("admin")
    stale = _open_form(client, case, deal)
    proposal = factories.stages_of(db.session.get(Pipeline, deal.pipeline_id))[1]
    BoardService(Actor.of(jane)).move(deal.id, stage_id=proposal.id, version=1)
    stale["name"] = "Renamed"
    refused = client.post(f"/deals/{deal.id}", data=stale)
    assert refused.status_code == 409 and "Jane Doe changed this deal" in refused.text
    db.session.expire_all()
    assert db.session.get(Deal, deal.id).stage_id == proposal.id  # the move is not undone by the stale form


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_missing_version_is_last_write_wins_and_junk_is_a_form_error(case, client, login, org):
    record = case.make(org)
    url = case.url.format(id=record.id)
    login("admin")
    values = _open_form(client, case, record)
    for junk in ("abc", "-1", "1.5", "١", "9" * 12, "0x1", "1 2"):
        values.update({"version": junk, case.field: "Tampered"})
        refused = client.post(url, data=values, headers=HX)
        assert refused.status_code == 422, (junk, refused.status_code)
        assert DAMAGED_VERSION in refused.text and 'value="Tampered"' in refused.text
        # Rendered back as posted: re-submitting the same form cannot skip the check.
        assert form_values(refused.text, case.form_id)["version"] == junk.strip()
    assert _stored(case, record) == ("Original", 1)
    # No version (an old cached page, an API-like client): saved as before, last write wins.
    values.pop("version")
    values[case.field] = "No version"
    assert client.post(url, data=values).status_code == 303
    values.update({"version": "", case.field: "Empty version"})
    assert client.post(url, data=values).status_code == 303
    assert _stored(case, record) == ("Empty version", 3)


def test_new_forms_carry_no_version(client, login, org):
    login("admin")
    page = client.get("/contacts/new")
    assert 'name="version"' not in page.text
    created = client.post("/contacts", data={"first_name": "New", "status": "lead", "version": "7"})
    assert created.status_code == 303
    assert db.session.scalars(db.select(Contact).where(Contact.first_name == "New")).one().version == 1


# --- service: one place, one extra statement on the refusal path only -------------------------------


def test_version_check_costs_nothing_when_current_and_one_statement_when_stale(users, org, jane, count_queries):
    contact_id = factories.make_contact(org, title="Original").id
    ContactService(Actor.of(jane)).update(contact_id, title="Theirs")
    service = ContactService(Actor.of(users["admin"]))
    with count_queries() as current:
        service.update(contact_id, expected_version=2, title="Mine")
    assert not any("record_history" in s and s.lstrip().upper().startswith("SELECT") for s in current.statements)
    db.session.expire_all()
    with count_queries() as stale, pytest.raises(Conflict) as error:
        service.update(contact_id, expected_version=1, title="Stale")
    history_reads = [s for s in stale.statements if "record_history" in s and s.lstrip().upper().startswith("SELECT")]
    assert len(history_reads) == 1 and len(stale) == 2  # the record, then who changed it
    assert error.value.current_version == 3
    # The last change was this user's own save (another tab), not Jane's.
    assert conflict_message(error.value).startswith("You changed this contact in another tab or window at ")


def test_conflict_message_without_history_is_generic(users, org):
    contact = factories.make_contact(org)  # made by a factory: no history at all
    db.session.execute(
        Contact.__table__.update()
        .where(Contact.__table__.c.id == contact.id)
        .values(version=Contact.__table__.c.version + 1)
    )
    db.session.expire_all()
    with pytest.raises(Conflict) as error:
        ContactService(Actor.of(users["admin"])).update(contact.id, expected_version=1, title="X")
    assert conflict_message(error.value) == "Someone else changed this contact after you opened it for editing."


@pytest.mark.parametrize(
    "current,shown,same",
    [
        (None, "", True),
        ("", None, True),
        (None, None, True),
        ("a", "a", True),
        ("a", "b", False),
        (None, "a", False),
        ("a", "", False),
        (0, "0", True),
        (0, "", False),
    ],
)
def test_same_value_compares_as_form_text(current, shown, same):
    assert same_value(current, shown) is same


# --- inline field edits ------------------------------------------------------------------------------


def _inline_form(client, contact, name: str) -> dict[str, str]:
    html = client.get(f"/contacts/{contact.id}/fields/{name}/edit", headers=HX).text
    return form_values(html.replace('<form class="inline-edit"', '<form id="inline" class="inline-edit"'), "inline")


def test_inline_edits_of_two_fields_in_sequence_both_save(client, login, org):
    contact = factories.make_contact(org, title="CEO", email="old@example.com")
    login("admin")
    title, email = _inline_form(client, contact, "title"), _inline_form(client, contact, "email")
    assert title == {"original": "CEO", "title": "CEO"} and email["original"] == "old@example.com"
    title["title"], email["email"] = "CTO", "new@example.com"
    first = client.post(f"/contacts/{contact.id}/fields/title", data=title, headers=HX)
    assert first.status_code == 200 and "CTO" in first.text
    second = client.post(f"/contacts/{contact.id}/fields/email", data=email, headers=HX)  # the version moved on
    # An email shown in place may wrap before its @ and dots (<wbr>: issue 18).
    assert second.status_code == 200 and "new@example.com" in second.text.replace("<wbr>", "")
    db.session.expire_all()
    saved = db.session.get(Contact, contact.id)
    assert (saved.title, saved.email, saved.version) == ("CTO", "new@example.com", 3)


def test_inline_edit_of_a_field_someone_else_changed_is_a_409_shown_inline(client, login, org, jane):
    contact = factories.make_contact(org, email="old@example.com", title="CEO")
    login("admin")
    mine = _inline_form(client, contact, "email")
    ContactService(Actor.of(jane)).update_field(contact.id, "email", "jane@example.com", original="old@example.com")
    mine["email"] = "mine@example.com"
    refused = client.post(f"/contacts/{contact.id}/fields/email", data=mine, headers=HX)
    assert refused.status_code == 409 and "HX-Retarget" not in refused.headers
    assert 'id="field-email"' in refused.text and "<html" not in refused.text
    assert re.search(r"Jane Doe changed the email of this contact at \d\d:\d\d UTC", refused.text)
    assert "It is now “jane@example.com”." in refused.text
    assert 'value="mine@example.com"' in refused.text  # the typed value is kept
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).email == "jane@example.com"
    # Save anyway: the re-rendered form shows the current value as `original`.
    again = form_values(
        refused.text.replace('<form class="inline-edit"', '<form id="inline" class="inline-edit"'), "inline"
    )
    assert again == {"original": "jane@example.com", "email": "mine@example.com"}
    assert client.post(f"/contacts/{contact.id}/fields/email", data=again, headers=HX).status_code == 200
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).email == "mine@example.com"


def test_inline_edit_ignores_other_fields_changed_meanwhile_and_old_pages(client, login, org, jane):
    contact = factories.make_contact(org, title="CEO", city="Paris")
    login("admin")
    mine = _inline_form(client, contact, "city")
    ContactService(Actor.of(jane)).update(contact.id, title="CTO")  # another field: not a conflict
    mine["city"] = "Lyon"
    assert client.post(f"/contacts/{contact.id}/fields/city", data=mine, headers=HX).status_code == 200
    # No `original` (a page from before this rule): last write wins.
    db.session.expire_all()  # the test's session: see the request's save
    ContactService(Actor.of(jane)).update(contact.id, city="Nice")
    assert client.post(f"/contacts/{contact.id}/fields/city", data={"city": "Lille"}, headers=HX).status_code == 200
    db.session.expire_all()
    assert (db.session.get(Contact, contact.id).city, db.session.get(Contact, contact.id).title) == ("Lille", "CTO")


def test_inline_validation_error_keeps_the_original_shown(client, login, org, jane):
    contact = factories.make_contact(org, email="old@example.com")
    login("admin")
    mine = _inline_form(client, contact, "email")
    mine["email"] = "not an email"
    invalid = client.post(f"/contacts/{contact.id}/fields/email", data=mine, headers=HX)
    assert invalid.status_code == 422
    ContactService(Actor.of(jane)).update(contact.id, email="jane@example.com")
    # The 422 form still carries what was first shown, so the later save is refused, not an overwrite.
    retry = form_values(
        invalid.text.replace('<form class="inline-edit"', '<form id="inline" class="inline-edit"'), "inline"
    )
    assert retry["original"] == "old@example.com"
    retry["email"] = "mine@example.com"
    assert client.post(f"/contacts/{contact.id}/fields/email", data=retry, headers=HX).status_code == 409

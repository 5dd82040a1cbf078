"""XSS: script and HTML payloads in every text field of every entity render as text on every page
that shows them (lists, details, board, dashboard, search, trash, history, toasts).

Each payload goes, with a marker prefix, into every free-text column of a World's records, its
trashed records, tag, pipeline, stages and users. Every page must then contain the escaped
payload (so the test sees the data) and never the raw one.
"""

from __future__ import annotations

import pytest
from markupsafe import escape
from sqlalchemy import insert, update

from crm_web.extensions import db
from crm_web.models import Activity, Company, Contact, Deal, Lead, Pipeline, PipelineStage, Tag, User
from crm_web.models.tag import contact_tags
from tests.conftest import HX
from tests.security_support import build_world, make_users

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{7*7}}"]
MARK = "Zq"

TEXT_FIELDS = {
    Contact: (
        "first_name",
        "last_name",
        "phone",
        "mobile",
        "title",
        "department",
        "street",
        "city",
        "state",
        "country",
        "notes",
        "linkedin_url",
    ),
    Company: ("name", "website", "phone", "industry", "description", "street", "city", "state", "country"),
    Lead: ("first_name", "last_name", "phone", "title", "company_name", "website", "notes"),
    Deal: ("name", "lost_reason", "description"),
    Activity: ("subject", "description"),
    Pipeline: ("name",),
    PipelineStage: ("name",),
    Tag: ("name",),
    User: ("name",),
}


@pytest.fixture(params=PAYLOADS, ids=["script", "img-onerror", "template"])
def payload(request):
    return MARK + request.param


@pytest.fixture
def poisoned(app, client, org, payload):
    """A World whose every text field holds the payload; the admin is signed in."""
    world = build_world(org, make_users(org), "Xss")
    for model, columns in TEXT_FIELDS.items():
        db.session.execute(
            update(model)
            .where(model.org_id == org.id)
            .values({c: payload for c in columns})
            .execution_options(include_deleted=True, synchronize_session=False)
        )
    db.session.execute(insert(contact_tags).values(contact_id=world["contact"], tag_id=world["tag"]))
    db.session.commit()
    db.session.expire_all()
    with client.session_transaction() as session:
        session["_user_id"] = world.users["admin"].get_id()
        session["_fresh"] = True
    # A change through the app, so record history holds the payload too.
    changed = client.post(f"/contacts/{world['contact']}/fields/city", data={"city": payload + "2"}, headers=HX)
    assert changed.status_code == 200
    return world


def assert_rendered_as_text(body: str, payload: str, where: str) -> None:
    raw = payload[len(MARK) :]
    shown = body.replace("<mark>", "").replace("</mark>", "")  # search highlights the marker
    assert str(escape(payload)) in shown, f"{where}: the payload is not shown, so the test proves nothing"
    if raw != str(escape(raw)):
        assert raw not in body, f"{where}: the payload is rendered as markup"
    else:  # a template expression: shown as typed, never evaluated
        assert MARK + "49" not in body, f"{where}: the payload was evaluated"


def pages(world) -> list[tuple[str, dict]]:
    return [
        ("/", {}),
        ("/contacts", {}),
        ("/contacts", HX),
        (f"/contacts/{world['contact']}", {}),
        (f"/contacts/{world['contact']}/edit", {}),
        (f"/contacts/{world['contact']}/fields/city", HX),
        ("/companies", {}),
        (f"/companies/{world['company']}", {}),
        (f"/companies/{world['company']}/edit", {}),
        ("/leads", {}),
        (f"/leads/{world['lead']}", {}),
        (f"/leads/{world['lead']}/edit", {}),
        ("/deals", {}),
        (f"/deals/{world['deal']}", {}),
        (f"/deals/{world['deal']}/edit", {}),
        (f"/deals/board?pipeline={world['pipeline']}", {}),
        (f"/deals/board/column/{world['stage']}", HX),
        ("/activities?view=all", {}),
        (f"/activities/{world['activity']}/edit", {}),
        (f"/activities/timeline?contact={world['contact']}", HX),
        (f"/search?q={MARK}", {}),
        (f"/search?q={MARK}", HX),
        ("/trash", {}),
        (f"/trash/contact/{world['trashed_contact']}", {}),
        (f"/trash/purge?item=contact:{world['trashed_contact']}", {}),
        ("/pipelines", {}),
        (f"/pipelines/{world['pipeline']}/edit", {}),
        (f"/tags/contact/{world['contact']}", HX),
        ("/companies/duplicates", {}),
        (f"/duplicates/merges/{world['merge']}/history", {}),
    ]


def test_payloads_render_as_text_on_every_page(app, client, poisoned, payload):
    for path, headers in pages(poisoned):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        assert_rendered_as_text(response.get_data(as_text=True), payload, path)


def test_payloads_render_as_text_in_toasts(app, client, poisoned, payload):
    for path in (
        f"/contacts/{poisoned['contact']}/delete",
        f"/deals/{poisoned['deal']}/delete",
        f"/activities/{poisoned['activity']}/delete",
        f"/companies/{poisoned['company']}/delete",
        f"/leads/{poisoned['lead']}/delete",
    ):
        response = client.post(path, headers=HX)
        assert response.status_code == 200, (path, response.status_code)
        body = response.get_data(as_text=True)
        assert "toast" in body
        assert_rendered_as_text(body, payload, path)


def test_search_highlight_escapes_around_the_match(app, client, poisoned, payload):
    """highlight() wraps matches in <mark>: the text around and inside the match stays escaped."""
    raw = payload[len(MARK) :]
    body = client.get("/search", query_string={"q": raw[:6]}, headers=HX).get_data(as_text=True)
    if raw != str(escape(raw)):
        assert raw not in body


def test_no_safe_filter_or_markup_on_user_data():
    """The only Markup built in code is search highlighting (escaped input); templates use no |safe."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in (root / "templates").rglob("*.html"):
        text = path.read_text()
        assert "|safe" not in text.replace(" ", ""), path
        assert "autoescape false" not in text, path
    users = [p for p in (root / "crm_web").rglob("*.py") if "Markup(" in p.read_text()]
    assert [p.name for p in users] == ["search.py"]

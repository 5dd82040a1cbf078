"""Every route of the URL map, checked for tenant isolation, access by role, CSRF and GET safety.

The inventory (tests/security_support.py ROUTES) must cover the URL map exactly, so a new route
fails here until it is classified. docs/security.md "Access by role" is rendered from the same
inventory and compared with the committed file; the role tests prove every cell of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_web import create_app
from crm_web.extensions import db
from crm_web.models import Base
from tests import factories
from tests.conftest import HX
from tests.security_support import (
    ALLOWED,
    DELETER,
    FORBIDDEN,
    PUBLIC,
    REDIRECT,
    ROLES,
    ROUTES,
    STATE_CHANGING,
    TOKEN,
    build_world,
    call,
    expected_access,
    make_users,
    outcome,
    table_cell,
    url_map_routes,
    uuid_arguments,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
DOC_START = "<!-- access-table:start -->"
DOC_END = "<!-- access-table:end -->"
REGENERATE = "UPDATE_SECURITY_DOC=1 .venv/bin/python -m pytest -q tests/test_security_routes.py -k access_table"


@pytest.fixture(scope="module")
def bare_app():
    """An app for reading the URL map only (no database work)."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x",
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "CACHE_TYPE": "SimpleCache",
        }
    )


def test_every_route_is_in_the_inventory(bare_app):
    in_map = set(url_map_routes(bare_app))
    missing = sorted(in_map - set(ROUTES))
    stale = sorted(set(ROUTES) - in_map)
    assert not missing, (
        f"Routes without a security classification: {missing}. Add each to ROUTES in "
        "tests/security_support.py (access level, path arguments, a valid form), then regenerate "
        f"docs/security.md with: {REGENERATE}"
    )
    assert not stale, f"ROUTES lists routes the app no longer has: {stale}"


def test_every_uuid_argument_is_filled_from_the_world(bare_app):
    rules = url_map_routes(bare_app)
    for key, route in ROUTES.items():
        for name in uuid_arguments(rules[key]):
            assert name in route.args and not route.args[name].startswith("="), (key, name)


# --- the access table in docs/security.md ---------------------------------------------------


def access_table(app) -> str:
    rules = url_map_routes(app)
    lines = [
        "Generated from the route inventory (tests/security_support.py) and proven cell by cell by",
        f"`tests/test_security_routes.py::test_role_access`. Regenerate: `{REGENERATE}`",
        "",
        "A sales user may change only records they own (or unowned ones): the tests request those",
        "routes on records owned by an admin and expect 403. Restores follow the one restore policy (see",
        "Restore, purge and races below): the world's trashed records were deleted by an admin, so sales",
        "and managers get 403; `test_restore_policy` proves each of them restores their own deletes.",
        "htmx requests of an anonymous user get `401` with `HX-Redirect` instead of the redirect.",
        "`/internal/*` needs an",
        "`Authorization: Bearer` token scoped to the endpoint and the organisation, whatever the session",
        "(401 without a valid one, 403 outside its scope; see Internal API tokens above).",
        "",
        "| Method | Route | Endpoint | " + " | ".join(ROLES) + " |",
        "|---|---|---|" + "---|" * len(ROLES),
    ]
    for (method, endpoint), route in sorted(ROUTES.items(), key=lambda item: (rules[item[0]].rule, item[0])):
        cells = [table_cell(route.access, role) for role in ROLES]
        lines.append(f"| {method} | `{rules[(method, endpoint)].rule}` | {endpoint} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_access_table_in_docs_is_current(bare_app):
    table = access_table(bare_app)
    text = DOC.read_text()
    section = f"## Access by role\n\n{DOC_START}\n{table}\n{DOC_END}\n"
    if DOC_START in text:
        current = re.search(
            r"## Access by role\n\n" + re.escape(DOC_START) + r".*?" + re.escape(DOC_END) + r"\n", text, re.S
        )
        updated = text.replace(current.group(0), section) if current else text
    else:
        updated = text.rstrip("\n") + "\n\n" + section
    if os.environ.get("UPDATE_SECURITY_DOC") == "1":
        DOC.write_text(updated)
        text = updated
    assert "## Tenant isolation" in text
    assert text == updated, f"docs/security.md 'Access by role' is stale; regenerate it: {REGENERATE}"


# --- worlds -------------------------------------------------------------------------------


@pytest.fixture
def world(org):
    return build_world(org, make_users(org), "Acme")


@pytest.fixture
def foreign(other_org):
    return build_world(other_org, make_users(other_org), "Globex")


def _sign_in(client, user) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True


ROUTE_KEYS = sorted(ROUTES)
ROUTE_IDS = [f"{method}-{endpoint}" for method, endpoint in ROUTE_KEYS]
UUID_ROUTES = [
    key
    for key in ROUTE_KEYS
    # A password link's token is its own key (not an id of an org's record): tests/test_users.py
    # shows it is useless for another organisation.
    if any(not v.startswith("=") for v in ROUTES[key].args.values()) and ROUTES[key].access not in (TOKEN, PUBLIC)
]


# --- another org's ids: 404 on every route --------------------------------------------------


@pytest.mark.parametrize("key", UUID_ROUTES, ids=[f"{m}-{e}" for m, e in UUID_ROUTES])
def test_another_orgs_id_is_404(key, app, client, world, foreign):
    method, endpoint = key
    _sign_in(client, world.users["admin"])
    for headers in ({}, HX):
        response = call(client, app, method, endpoint, world, ids_from=foreign, headers=headers)
        assert response.status_code == 404, (key, headers, response.status_code)
        assert foreign.marker not in response.get_data(as_text=True)


# --- access by role -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", ROUTE_KEYS, ids=ROUTE_IDS)
def test_role_access(key, role, app, client, world):
    method, endpoint = key
    route = ROUTES[key]
    expected = expected_access(route.access, role)
    if role != "anonymous":
        _sign_in(client, world.users[role])
    response = call(client, app, method, endpoint, world)
    got = outcome(response)
    if endpoint == "auth.logout" and role != "anonymous":
        # Signing out answers with the sign-in page too: what tells it apart is the ended session.
        assert got == REDIRECT
        with client.session_transaction() as session:
            assert "_user_id" not in session
        got = ALLOWED
    if endpoint == "auth.login" and method == "POST" and role == "anonymous":
        assert response.status_code == 303
    assert got == expected, (key, role, response.status_code, response.get_data(as_text=True)[:300])
    if expected == REDIRECT:
        htmx = call(client, app, method, endpoint, world, headers=HX)
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


# --- the restore policy: whoever deleted a record, or an admin (services/trash.py) ----------------

# Tags and custom field definitions are settings, not records: their restore follows the settings' roles.
SETTINGS_RESTORES = ("settings.restore_tag", "settings.restore_field")
RESTORE_KEYS = [k for k in ROUTE_KEYS if k[0] == "POST" and "restore" in k[1] and k[1] not in SETTINGS_RESTORES]


def test_every_restore_route_follows_the_one_restore_policy():
    """Tags are not in the trash (settings, managers); every other restore is the trash's."""
    assert RESTORE_KEYS
    assert [k for k in RESTORE_KEYS if ROUTES[k].access != DELETER] == []


def _trashed_by(world, user) -> None:
    """The world's trashed records as if `user` had deleted them."""
    for key in (
        "trashed_contact",
        "trashed_deal",
        "trashed_company",
        "trashed_lead",
        "trashed_activity",
        "trashed_view",
    ):
        model = {
            "trashed_contact": "Contact",
            "trashed_deal": "Deal",
            "trashed_company": "Company",
            "trashed_lead": "Lead",
            "trashed_activity": "Activity",
            "trashed_view": "SavedView",
        }[key]
        from crm_web import models

        table = getattr(models, model).__table__
        db.session.execute(table.update().where(table.c.id == world[key]).values(deleted_by_id=user.id))
    db.session.flush()


@pytest.mark.parametrize("role", ["sales", "manager"])
@pytest.mark.parametrize("key", RESTORE_KEYS, ids=lambda k: k[1])
def test_restore_policy(key, role, app, client, world):
    """Not the deleter (the world's admin deleted them): 403 through every restore route, the trash page's
    and each record's own alike. The deleter: restored."""
    method, endpoint = key
    _sign_in(client, world.users[role])
    assert outcome(call(client, app, method, endpoint, world)) == FORBIDDEN
    _trashed_by(world, world.users[role])
    response = call(client, app, method, endpoint, world)
    assert outcome(response) == ALLOWED, (key, role, response.status_code, response.get_data(as_text=True)[:300])


@pytest.mark.parametrize("key", [k for k in ROUTE_KEYS if ROUTES[k].access == TOKEN], ids=lambda k: k[1])
def test_internal_routes_accept_only_the_token(key, app, client, world):
    method, endpoint = key
    factories.make_api_token(world.org)
    _sign_in(client, world.users["admin"])
    assert call(client, app, method, endpoint, world).status_code == 401
    wrong = call(client, app, method, endpoint, world, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong.is_json
    right = call(client, app, method, endpoint, world, headers=factories.BEARER)
    assert right.status_code in (200, 201), right.get_data(as_text=True)


# --- CSRF -------------------------------------------------------------------------------------


CSRF_ROUTES = [k for k in ROUTE_KEYS if k[0] in STATE_CHANGING and not ROUTES[k].csrf_exempt]


def test_every_state_changing_route_is_csrf_checked_or_declared_exempt(bare_app):
    for key in url_map_routes(bare_app):
        if key[0] in STATE_CHANGING:
            assert key in CSRF_ROUTES or (ROUTES[key].csrf_exempt and ROUTES[key].access == TOKEN), key


@pytest.mark.parametrize("key", CSRF_ROUTES, ids=[f"{m}-{e}" for m, e in CSRF_ROUTES])
def test_csrf_required(key, app, client, world):
    method, endpoint = key
    _sign_in(client, world.users["admin"])
    for headers in ({}, HX):
        refused = call(client, app, method, endpoint, world, headers=headers, csrf=False)
        assert refused.status_code == 400, (key, refused.status_code)
        assert "expired" in refused.get_data(as_text=True)
    accepted = call(client, app, method, endpoint, world)
    assert accepted.status_code != 400, (key, accepted.get_data(as_text=True)[:300])


# --- GET never changes data -----------------------------------------------------------------


def _table_state() -> dict[str, tuple]:
    """Per table: row count, and for versioned/soft-deleted tables the sum of versions and trashed rows."""
    state = {}
    for table in Base.metadata.sorted_tables:
        columns = [func.count()]
        if "version" in table.c:
            columns.append(func.coalesce(func.sum(table.c.version), 0))
        if "deleted_at" in table.c:
            columns.append(func.count(table.c.deleted_at))
        state[table.name] = tuple(db.session.execute(select(*columns).select_from(table)).one())
    return state


def test_no_get_route_changes_data(app, client, world):
    _sign_in(client, world.users["admin"])
    before = _table_state()
    for method, endpoint in ROUTE_KEYS:
        if method == "GET":
            for headers in ({}, HX):
                response = call(client, app, method, endpoint, world, headers=headers)
                assert response.status_code < 500, (endpoint, response.status_code)
    db.session.expire_all()
    assert _table_state() == before

"""The security suite's route inventory and the small world of records it requests routes against.

ROUTES classifies every (method, endpoint) of the URL map: who may call it (ACCESS levels), how to
fill its path arguments from a `World`, and a valid form body for state-changing routes. A route
missing here fails tests/test_security_routes.py::test_every_route_is_in_the_inventory, so a new
route cannot ship without its access rule, its cross-org 404 test and its CSRF test.

Records in a World are owned (and trashed) by the org's admin, so a sales user's access to a
record-changing route shows the "owner or manager" rule (403), not the owner's own access.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from crm_web.models import utcnow
from tests import factories

ROLES = ("anonymous", "sales", "manager", "admin")

# Access levels: who gets through (everyone else: anonymous -> login, signed in -> 403).
PUBLIC = "public"  # no sign-in needed
TOKEN = "token"  # service-to-service: a bearer token, never a session (401 without it)
MEMBER = "member"  # any signed-in user
OWNER = "owner"  # the record's owner (sales) or any manager/admin; others 403
MANAGER = "manager"  # managers and admins
ADMIN = "admin"  # admins only
# Restores (one policy, services/trash.py): whoever deleted the record, or an admin. The world's trashed
# records were deleted by its admin, so sales and managers get 403 there; test_restore_policy checks that
# each of them gets through on their own deletes.
DELETER = "deleter"

ALLOWED, FORBIDDEN, REDIRECT, UNAUTHORIZED = "allowed", "403", "redirect to /login", "401"


def expected_access(access: str, role: str) -> str:
    """The outcome a role should get on a route of the given access level."""
    if access == PUBLIC:
        return ALLOWED
    if access == TOKEN:
        return UNAUTHORIZED
    if role == "anonymous":
        return REDIRECT
    if access == MEMBER:
        return ALLOWED
    if access in (OWNER, MANAGER):
        return FORBIDDEN if role == "sales" else ALLOWED
    if access in (ADMIN, DELETER):
        return ALLOWED if role == "admin" else FORBIDDEN
    raise AssertionError(f"unknown access level {access!r}")


def table_cell(access: str, role: str) -> str:
    """A cell of docs/security.md's access table (an owner-only route says so for sales)."""
    if access == OWNER and role == "sales":
        return "own records only (else 403)"
    if access == DELETER and role in ("sales", "manager"):
        return "own deletes only (else 403)"
    return expected_access(access, role)


@dataclass
class World:
    """One organisation's records, every kind a route can point at. `marker` is in every name."""

    marker: str
    org: Any
    users: dict[str, Any]
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    stage_order: list[uuid.UUID] = field(default_factory=list)

    def __getitem__(self, key: str) -> uuid.UUID:
        value = self.ids[key]
        # A record made only when a route asks for it (see _later), so a test that rewrites every
        # row of a table (test_security_xss: every tag name) does not meet it.
        return value() if callable(value) else value


@functools.cache
def _password_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash("secret")


def make_users(org: Any) -> dict[str, Any]:
    """One user per role, password "secret", hashed once per run (hashing is most of a world's cost)."""
    from crm_web.extensions import db
    from crm_web.models import User

    users = {}
    for role in ("admin", "manager", "sales"):
        n = uuid.uuid4().hex[:8]
        users[role] = User(
            org_id=org.id,
            email=f"{role}-{n}@{org.slug}.test",
            name=f"{role.title()} {n}",
            role=role,
            active=True,
            password_hash=_password_hash(),
        )
        db.session.add(users[role])
    db.session.commit()
    return users


def _later(make: Callable[[], Any]) -> Callable[[], uuid.UUID]:
    """The id of a record made when first asked for (World.__getitem__)."""
    return lambda: make().id


def _notification(org: Any, user: Any, deal: Any, marker: str) -> Any:
    """The admin's notification about the world's deal (the other roles' posts of it change nothing)."""
    from crm_web.extensions import db
    from crm_web.models import Notification

    note = Notification(
        org_id=org.id, user_id=user.id, kind="assigned", entity_type="deal", entity_id=deal.id, label=f"{marker} Deal"
    )
    db.session.add(note)
    db.session.commit()
    return note


def _invited_user(org: Any, admin: Any, marker: str) -> tuple[Any, str]:
    """A user added by the admin who has not opened their invitation yet, and its token."""
    from crm_web.services.users import UserService

    user, link = UserService(factories.actor_for(admin)).create(
        name=f"{marker} Invitee", email=f"invitee-{uuid.uuid4().hex[:8]}@{org.slug}.test", role="sales"
    )
    return user, link.token


def _imports(org: Any, owner: Any, marker: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A draft import (its file mapped, not run) and a finished one with an errors file."""
    import os
    import tempfile

    from crm_web.extensions import db
    from crm_web.models import Import

    folder = tempfile.mkdtemp(prefix="crm-import-")
    path = os.path.join(folder, "contacts.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"First name,Email\n{marker}Imported,imported-{uuid.uuid4().hex[:8]}@example.com\n")
    errors = os.path.join(folder, "contacts.errors.csv")
    with open(errors, "w", encoding="utf-8") as f:
        f.write("First name,Email,error\n,x,First name: required\n")
    common = {"org_id": org.id, "created_by_id": owner.id, "entity": "contact", "file_path": path}
    mapping = {"columns": ["first_name", "email"], "header": ["First name", "Email"]}
    draft = Import(**common, file_name=f"{marker} draft.csv", mapping=mapping, options={}, status="draft")
    done = Import(
        **common,
        file_name=f"{marker} done.csv",
        mapping=mapping,
        options={"errors_path": errors},
        status="done",
        total_rows=1,
        rows_done=1,
    )
    db.session.add_all([draft, done])
    db.session.commit()
    return draft.id, done.id


def _merge(org: Any, owner: Any, marker: str) -> Any:
    """Two companies merged by the org's admin (an Undo to request)."""
    from crm_web.services.duplicates.service import DuplicateService

    a = factories.make_company(org, name=f"{marker} Merged A", owner_id=owner.id)
    b = factories.make_company(org, name=f"{marker} Merged B", owner_id=owner.id)
    return DuplicateService(factories.actor_for(owner)).merge("company", [a.id, b.id], survivor_id=a.id)


def _proposal(org: Any, user: Any, marker: str) -> Any:
    """A merge of two companies a sales user proposed (managers dismiss it)."""
    from crm_web.services.duplicates.service import DuplicateService

    a = factories.make_company(org, name=f"{marker} Proposed A")
    b = factories.make_company(org, name=f"{marker} Proposed B")
    return DuplicateService(factories.actor_for(user)).propose("company", [a.id, b.id])


def _upload_form(world: World) -> dict[str, Any]:
    import io

    return {"entity": "contacts", "file": (io.BytesIO(b"First name,Email\nAda,ada@example.com\n"), "people.csv")}


def _saved_view(org: Any, owner: Any, name: str, **values: Any) -> Any:
    """A view the owner shared with the organisation (managers may change it, sales may not)."""
    from crm_web.extensions import db
    from crm_web.models import SavedView

    view = SavedView(org_id=org.id, owner_id=owner.id, list_key="deals", name=name, query="q=x", shared=True, **values)
    db.session.add(view)
    db.session.commit()
    return view


def build_world(org: Any, users: dict[str, Any], marker: str) -> World:
    """Records of every kind, owned and trashed by the org's admin, with `marker` in their names."""
    owner = users["admin"]
    gone = {"deleted_at": utcnow() - timedelta(minutes=5), "deleted_by_id": owner.id}
    pipeline = factories.make_pipeline(org, name=f"{marker} Pipeline", is_default=True)
    stages = factories.stages_of(pipeline)
    spare = factories.make_pipeline(org, name=f"{marker} Spare", is_default=False, stages=[("Only", 10, None)])
    company = factories.make_company(org, name=f"{marker} Company", owner_id=owner.id)
    contact = factories.make_contact(
        org, first_name=f"{marker}Contact", owner_id=owner.id, primary_company_id=company.id
    )
    lead = factories.make_lead(org, first_name=f"{marker}Lead", owner_id=owner.id)
    deal = factories.make_deal(org, stage=stages[0], name=f"{marker} Deal", owner_id=owner.id, contact_id=contact.id)
    activity = factories.make_activity(org, subject=f"{marker} Call", owner_id=owner.id, contact_id=contact.id)
    tag = factories.make_tag(org, name=f"{marker} Tag")
    tag2 = _later(lambda: factories.make_tag(org, name=f"{marker} Other tag {uuid.uuid4().hex[:6]}"))
    trashed_tag = _later(lambda: factories.make_tag(org, name=f"{marker} Trashed tag {uuid.uuid4().hex[:6]}", **gone))
    invited, invite_token = _invited_user(org, owner, marker)
    deactivated = factories.make_user(org, role="sales", name=f"{marker} Former", active=False)
    trashed_contact = factories.make_contact(org, first_name=f"{marker}Trashed", owner_id=owner.id, **gone)
    trashed_deal = factories.make_deal(org, stage=stages[0], name=f"{marker} Trashed deal", owner_id=owner.id, **gone)
    trashed_company = factories.make_company(org, name=f"{marker} Trashed company", owner_id=owner.id, **gone)
    trashed_lead = factories.make_lead(org, first_name=f"{marker}TrashedLead", owner_id=owner.id, **gone)
    trashed_activity = factories.make_activity(org, subject=f"{marker} Trashed call", owner_id=owner.id, **gone)
    draft_import, done_import = _imports(org, owner, marker)
    view = _saved_view(org, owner, f"{marker} View")
    trashed_view = _saved_view(org, owner, f"{marker} Trashed view", **gone)
    _custom_fields(org)
    company2 = factories.make_company(org, name=f"{marker} Company Inc", owner_id=owner.id)
    merge = _merge(org, owner, marker)
    notification = _later(lambda: _notification(org, owner, deal, marker))
    proposal = _later(lambda: _proposal(org, users["sales"], marker))
    world = World(marker, org, users, stage_order=[s.id for s in stages])
    world.ids.update(
        org=org.id,
        pipeline=pipeline.id,
        stage=stages[0].id,
        stage2=stages[1].id,
        empty_stage=stages[2].id,
        spare_pipeline=spare.id,
        company=company.id,
        company2=company2.id,
        merge=merge.id,
        proposal=proposal,
        contact=contact.id,
        lead=lead.id,
        deal=deal.id,
        activity=activity.id,
        tag=tag.id,
        tag2=tag2,
        trashed_tag=trashed_tag,
        invited=invited.id,
        deactivated=deactivated.id,
        invite_token=invite_token,
        trashed_contact=trashed_contact.id,
        trashed_deal=trashed_deal.id,
        trashed_activity=trashed_activity.id,
        trashed_company=trashed_company.id,
        trashed_lead=trashed_lead.id,
        draft_import=draft_import,
        done_import=done_import,
        view=view.id,
        trashed_view=trashed_view.id,
        notification=notification,
        sales=users["sales"].id,
        manager=users["manager"].id,
        admin=owner.id,
    )
    return world


def _custom_fields(org: Any) -> None:
    """A text field "sec" on every entity with custom fields, and a trashed one on companies."""
    from crm_web.extensions import db

    def one(field_id: str, key: str, **extra: Any) -> dict[str, Any]:
        return {"id": field_id, "key": key, "label": key.title(), "type": "text", "position": 1, **extra}

    org.custom_fields = {
        "contact": [one("secfield", "sec")],
        "lead": [one("secfield", "sec")],
        "deal": [one("secfield", "sec")],
        "company": [one("secfield", "sec"), one("sectrash", "gone", deleted_at=utcnow().isoformat())],
    }
    db.session.commit()


Form = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """How to call one (method, endpoint): its access level, path arguments and a valid body.

    `args` maps each path argument to a World key (uuid arguments) or a literal (`=value`).
    `query` adds a query string (World keys in `{braces}`); `form` builds a valid body.
    """

    access: str
    args: dict[str, str] = field(default_factory=dict)
    query: str = ""
    form: Form | None = None
    csrf_exempt: bool = False


def _activity_form(world: World) -> dict[str, Any]:
    return {
        "type": "call",
        "subject": "Follow up",
        "status": "pending",
        "priority": "medium",
        "due_date": "2030-01-02",
        "due_time": "10:00",
        "owner_id": "",
        "contact_id": str(world["contact"]),
    }


def _contact_form(world: World) -> dict[str, Any]:
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.org",
        "status": "customer",
        "owner_id": str(world["admin"]),
        "primary_company_id": str(world["company"]),
    }


def _deal_form(world: World) -> dict[str, Any]:
    return {
        "name": "Big deal",
        "value": "1200",
        "currency": "USD",
        "stage_id": str(world["stage"]),
        "owner_id": str(world["admin"]),
        "company_id": "",
        "contact_id": "",
        "source": "",
    }


def _company_form(world: World) -> dict[str, Any]:
    return {
        "name": "Initech",
        "website": "https://initech.example",
        "size": "",
        "owner_id": str(world["admin"]),
        "employee_count": "12",
        "annual_revenue": "1000",
    }


def _lead_form(world: World) -> dict[str, Any]:
    return {
        "first_name": "Peter",
        "last_name": "Gibbons",
        "email": "peter@initech.example",
        "source": "",
        "score": "40",
        "estimated_value": "900",
        "owner_id": str(world["admin"]),
    }


def _ids(key: str) -> Form:
    return lambda world: {"ids": [str(world[key])]}


def _revert(key: str) -> Form:
    """The Undo of a bulk owner change: the record back to the admin who owns it in the world."""
    return lambda world: {"field": "owner_id", "ids": [str(world[key])], "previous": [str(world["admin"])]}


ROUTES: dict[tuple[str, str], Route] = {
    # --- public, token and session ----------------------------------------------------------
    ("GET", "auth.login"): Route(PUBLIC),
    ("POST", "auth.login"): Route(PUBLIC, form=lambda w: {"email": w.users["sales"].email, "password": "secret"}),
    ("POST", "auth.logout"): Route(MEMBER, form=lambda w: {}),
    ("GET", "auth.set_password"): Route(PUBLIC, args={"token": "invite_token"}),
    ("POST", "auth.set_password"): Route(
        PUBLIC,
        args={"token": "invite_token"},
        form=lambda w: {"password": "a long unusual passphrase", "confirm_password": "a long unusual passphrase"},
    ),
    ("GET", "system.healthz"): Route(PUBLIC),
    # --- my account -------------------------------------------------------------------------
    ("GET", "account.index"): Route(MEMBER),
    ("POST", "notifications.preferences"): Route(
        MEMBER, form=lambda w: {"reminder_minutes": "15", "kinds": ["assigned", "due_soon"]}
    ),
    ("GET", "notifications.index"): Route(MEMBER),
    ("GET", "notifications.bell"): Route(MEMBER),
    ("POST", "notifications.open_one"): Route(MEMBER, form=lambda w: {"id": str(w["notification"])}),
    ("POST", "notifications.mark_read"): Route(MEMBER, form=lambda w: {"id": str(w["notification"])}),
    ("POST", "notifications.mark_all_read"): Route(MEMBER, form=lambda w: {}),
    ("GET", "live.poll"): Route(MEMBER, args={"domain": "=deals"}, query="s=stale&board=1&pipeline={pipeline}"),
    ("POST", "account.update_profile"): Route(MEMBER, form=lambda w: {"name": "Renamed Person"}),
    ("POST", "account.change_password"): Route(
        MEMBER,
        form=lambda w: {
            "current_password": "secret",
            "new_password": "a long unusual passphrase",
            "confirm_password": "a long unusual passphrase",
        },
    ),
    ("POST", "account.sign_out_everywhere"): Route(MEMBER, form=lambda w: {}),
    ("GET", "internal.stats"): Route(TOKEN, args={"org_id": "org"}),
    ("POST", "internal.usage"): Route(TOKEN, args={"org_id": "org"}, form=lambda w: {}, csrf_exempt=True),
    # --- dashboard and search ---------------------------------------------------------------
    ("GET", "dashboard.index"): Route(MEMBER),
    ("GET", "dashboard.overview"): Route(MEMBER),
    ("GET", "imports.index"): Route(MANAGER),
    ("POST", "imports.upload"): Route(MANAGER, form=_upload_form),
    ("GET", "imports.mapping"): Route(MANAGER, args={"import_id": "draft_import"}),
    ("POST", "imports.configure"): Route(
        MANAGER, args={"import_id": "draft_import"}, form=lambda w: {"column-0": "first_name", "action": "preview"}
    ),
    ("GET", "imports.errors"): Route(MANAGER, args={"import_id": "done_import"}),
    ("GET", "imports.progress"): Route(MANAGER, args={"import_id": "done_import"}),
    ("GET", "imports.history"): Route(MANAGER),
    ("POST", "imports.undo"): Route(MANAGER, args={"import_id": "done_import"}, form=lambda w: {}),
    ("GET", "dashboard.panel"): Route(MEMBER, args={"panel": "=kpis"}),
    ("GET", "search.index"): Route(MEMBER, query="q=marker"),
    ("GET", "search.pick"): Route(MEMBER, args={"kind": "=company"}, query="q=marker"),
    # --- companies --------------------------------------------------------------------------
    ("GET", "companies.index"): Route(MEMBER),
    ("GET", "companies.export"): Route(MEMBER),
    ("POST", "companies.columns"): Route(MEMBER, form=lambda w: {"col": ["name", "cf_sec"]}),
    ("POST", "companies.custom_value"): Route(
        OWNER, args={"company_id": "company", "key": "=sec"}, form=lambda w: {"cf_sec": "x"}
    ),
    ("GET", "companies.new"): Route(MEMBER),
    ("POST", "companies.create"): Route(MEMBER, form=_company_form),
    ("POST", "companies.quick_create"): Route(MEMBER, form=lambda world: {"name": "Quick Co"}),
    ("GET", "companies.detail"): Route(MEMBER, args={"company_id": "company"}),
    ("GET", "companies.contacts"): Route(MEMBER, args={"company_id": "company"}),
    ("GET", "companies.edit"): Route(OWNER, args={"company_id": "company"}),
    ("POST", "companies.update"): Route(OWNER, args={"company_id": "company"}, form=_company_form),
    ("POST", "companies.delete"): Route(OWNER, args={"company_id": "company"}, form=lambda w: {}),
    ("POST", "companies.restore"): Route(DELETER, args={"company_id": "trashed_company"}, form=lambda w: {}),
    ("POST", "companies.bulk_delete"): Route(OWNER, form=_ids("company")),
    ("POST", "companies.restore_many"): Route(DELETER, form=_ids("trashed_company")),
    ("POST", "companies.bulk_tag"): Route(OWNER, form=lambda w: {"ids": [str(w["company"])], "tag_id": str(w["tag"])}),
    ("POST", "companies.bulk_untag"): Route(
        OWNER, form=lambda w: {"ids": [str(w["company"])], "tag_id": str(w["tag"])}
    ),
    ("POST", "companies.bulk_owner"): Route(
        OWNER, form=lambda w: {"ids": [str(w["company"])], "owner_id": str(w["sales"])}
    ),
    ("POST", "companies.bulk_revert"): Route(OWNER, form=_revert("company")),
    # --- leads ------------------------------------------------------------------------------
    ("GET", "leads.index"): Route(MEMBER),
    ("GET", "leads.export"): Route(MEMBER),
    ("POST", "leads.columns"): Route(MEMBER, form=lambda w: {"col": ["name", "cf_sec"]}),
    ("POST", "leads.custom_value"): Route(
        OWNER, args={"lead_id": "lead", "key": "=sec"}, form=lambda w: {"cf_sec": "x"}
    ),
    ("GET", "leads.new"): Route(MEMBER),
    ("POST", "leads.create"): Route(MEMBER, form=_lead_form),
    ("GET", "leads.detail"): Route(MEMBER, args={"lead_id": "lead"}),
    ("GET", "leads.edit"): Route(OWNER, args={"lead_id": "lead"}),
    ("POST", "leads.update"): Route(OWNER, args={"lead_id": "lead"}, form=_lead_form),
    ("POST", "leads.set_status"): Route(OWNER, args={"lead_id": "lead"}, form=lambda w: {"status": "contacted"}),
    ("GET", "leads.convert_form"): Route(OWNER, args={"lead_id": "lead"}),
    ("POST", "leads.convert"): Route(
        OWNER,
        args={"lead_id": "lead"},
        form=lambda w: {"create_deal": "y", "deal_name": "From lead", "deal_value": "500"},
    ),
    ("POST", "leads.delete"): Route(OWNER, args={"lead_id": "lead"}, form=lambda w: {}),
    ("POST", "leads.restore"): Route(DELETER, args={"lead_id": "trashed_lead"}, form=lambda w: {}),
    ("POST", "leads.bulk_delete"): Route(OWNER, form=_ids("lead")),
    ("POST", "leads.restore_many"): Route(DELETER, form=_ids("trashed_lead")),
    ("POST", "leads.bulk_tag"): Route(OWNER, form=lambda w: {"ids": [str(w["lead"])], "tag_id": str(w["tag"])}),
    ("POST", "leads.bulk_untag"): Route(OWNER, form=lambda w: {"ids": [str(w["lead"])], "tag_id": str(w["tag"])}),
    ("POST", "leads.bulk_owner"): Route(OWNER, form=lambda w: {"ids": [str(w["lead"])], "owner_id": str(w["sales"])}),
    ("POST", "leads.bulk_revert"): Route(OWNER, form=_revert("lead")),
    # --- activities -------------------------------------------------------------------------
    ("GET", "activities.index"): Route(MEMBER),
    ("GET", "activities.export"): Route(MEMBER, query="view=all"),
    ("POST", "activities.columns_choice"): Route(MEMBER, form=lambda w: {"col": ["subject", "owner"]}),
    ("POST", "board.card_fields"): Route(MEMBER, form=lambda w: {"field": ["sec"]}),
    ("GET", "activities.new"): Route(MEMBER, query="contact={contact}"),
    ("GET", "activities.timeline"): Route(MEMBER, query="contact={contact}"),
    ("POST", "activities.create"): Route(MEMBER, form=_activity_form),
    ("GET", "activities.edit"): Route(OWNER, args={"activity_id": "activity"}),
    ("POST", "activities.update"): Route(OWNER, args={"activity_id": "activity"}, form=_activity_form),
    ("POST", "activities.complete"): Route(OWNER, args={"activity_id": "activity"}, form=lambda w: {}),
    ("POST", "activities.reopen"): Route(OWNER, args={"activity_id": "activity"}, form=lambda w: {}),
    ("POST", "activities.delete"): Route(OWNER, args={"activity_id": "activity"}, form=lambda w: {}),
    ("POST", "activities.restore"): Route(DELETER, args={"activity_id": "trashed_activity"}, form=lambda w: {}),
    ("POST", "activities.bulk_delete"): Route(OWNER, form=_ids("activity")),
    ("POST", "activities.restore_many"): Route(DELETER, form=_ids("trashed_activity")),
    ("POST", "activities.bulk_owner"): Route(
        OWNER, form=lambda w: {"ids": [str(w["activity"])], "owner_id": str(w["sales"])}
    ),
    ("POST", "activities.bulk_complete"): Route(OWNER, form=_ids("activity")),
    ("POST", "activities.bulk_reschedule"): Route(
        OWNER, form=lambda w: {"ids": [str(w["activity"])], "due_date": "2030-02-03"}
    ),
    ("POST", "activities.bulk_revert"): Route(OWNER, form=_revert("activity")),
    ("POST", "activities.timeline_delete"): Route(OWNER, args={"activity_id": "activity"}, form=lambda w: {}),
    ("GET", "activities.calendar"): Route(MEMBER),
    ("GET", "my_day.index"): Route(MEMBER),
    ("POST", "activities.reschedule"): Route(
        OWNER, args={"activity_id": "activity"}, form=lambda w: {"date": "2030-01-03"}
    ),
    # --- contacts ---------------------------------------------------------------------------
    ("GET", "contacts.index"): Route(MEMBER),
    ("GET", "contacts.export"): Route(MEMBER),
    ("POST", "contacts.columns"): Route(MEMBER, form=lambda w: {"col": ["name", "cf_sec"]}),
    ("POST", "contacts.custom_value"): Route(
        OWNER, args={"contact_id": "contact", "key": "=sec"}, form=lambda w: {"cf_sec": "x"}
    ),
    ("GET", "contacts.new"): Route(MEMBER),
    ("GET", "contacts.check_email"): Route(MEMBER, query="email=someone@example.org"),
    ("POST", "contacts.create"): Route(MEMBER, form=_contact_form),
    ("GET", "contacts.detail"): Route(MEMBER, args={"contact_id": "contact"}),
    ("GET", "contacts.edit"): Route(OWNER, args={"contact_id": "contact"}),
    ("POST", "contacts.update"): Route(OWNER, args={"contact_id": "contact"}, form=_contact_form),
    ("GET", "contacts.show_field"): Route(MEMBER, args={"contact_id": "contact", "name": "=city"}),
    ("GET", "contacts.edit_field"): Route(MEMBER, args={"contact_id": "contact", "name": "=city"}),
    ("POST", "contacts.update_field"): Route(
        OWNER, args={"contact_id": "contact", "name": "=city"}, form=lambda w: {"city": "Lyon"}
    ),
    ("POST", "contacts.delete"): Route(OWNER, args={"contact_id": "contact"}, form=lambda w: {}),
    ("POST", "contacts.restore"): Route(DELETER, args={"contact_id": "trashed_contact"}, form=lambda w: {}),
    ("POST", "contacts.bulk_delete"): Route(OWNER, form=_ids("contact")),
    ("POST", "contacts.restore_many"): Route(DELETER, form=_ids("trashed_contact")),
    ("POST", "contacts.bulk_tag"): Route(OWNER, form=lambda w: {"ids": [str(w["contact"])], "tag_id": str(w["tag"])}),
    ("POST", "contacts.bulk_untag"): Route(OWNER, form=lambda w: {"ids": [str(w["contact"])], "tag_id": str(w["tag"])}),
    ("POST", "contacts.bulk_owner"): Route(
        OWNER, form=lambda w: {"ids": [str(w["contact"])], "owner_id": str(w["sales"])}
    ),
    ("POST", "contacts.bulk_revert"): Route(OWNER, form=_revert("contact")),
    # --- deals and the board ----------------------------------------------------------------
    ("GET", "deals.index"): Route(MEMBER),
    ("GET", "deals.export"): Route(MEMBER),
    ("POST", "deals.columns"): Route(MEMBER, form=lambda w: {"col": ["name", "cf_sec"]}),
    ("POST", "deals.custom_value"): Route(
        OWNER, args={"deal_id": "deal", "key": "=sec"}, form=lambda w: {"cf_sec": "x"}
    ),
    ("GET", "board.index"): Route(MEMBER, query="pipeline={pipeline}"),
    ("GET", "board.filter_builder"): Route(MEMBER),
    ("GET", "board.column"): Route(MEMBER, args={"stage_id": "stage"}),
    ("GET", "deals.new"): Route(MEMBER, query="pipeline={pipeline}"),
    ("POST", "deals.create"): Route(MEMBER, form=_deal_form),
    ("GET", "deals.detail"): Route(MEMBER, args={"deal_id": "deal"}),
    ("GET", "deals.history"): Route(MEMBER, args={"deal_id": "deal"}),
    ("GET", "deals.edit"): Route(OWNER, args={"deal_id": "deal"}),
    ("POST", "deals.update"): Route(OWNER, args={"deal_id": "deal"}, form=_deal_form),
    ("POST", "board.move"): Route(OWNER, args={"deal_id": "deal"}, form=lambda w: {"stage_id": str(w["stage2"])}),
    ("POST", "deals.mark_won"): Route(OWNER, args={"deal_id": "deal"}, form=lambda w: {}),
    ("POST", "deals.mark_lost"): Route(OWNER, args={"deal_id": "deal"}, form=lambda w: {"lost_reason": "Price"}),
    ("POST", "deals.reopen"): Route(OWNER, args={"deal_id": "deal"}, form=lambda w: {}),
    ("POST", "deals.delete"): Route(OWNER, args={"deal_id": "deal"}, form=lambda w: {}),
    ("POST", "deals.restore"): Route(DELETER, args={"deal_id": "trashed_deal"}, form=lambda w: {}),
    ("POST", "deals.bulk_delete"): Route(OWNER, form=_ids("deal")),
    ("POST", "deals.restore_many"): Route(DELETER, form=_ids("trashed_deal")),
    ("POST", "deals.bulk_tag"): Route(OWNER, form=lambda w: {"ids": [str(w["deal"])], "tag_id": str(w["tag"])}),
    ("POST", "deals.bulk_untag"): Route(OWNER, form=lambda w: {"ids": [str(w["deal"])], "tag_id": str(w["tag"])}),
    ("POST", "deals.bulk_owner"): Route(OWNER, form=lambda w: {"ids": [str(w["deal"])], "owner_id": str(w["sales"])}),
    ("POST", "deals.bulk_revert"): Route(OWNER, form=_revert("deal")),
    ("POST", "board.delete"): Route(OWNER, query="pipeline={pipeline}", form=_ids("deal")),
    ("POST", "board.restore"): Route(DELETER, query="pipeline={pipeline}", form=_ids("trashed_deal")),
    # --- pipeline settings ------------------------------------------------------------------
    ("GET", "pipelines.index"): Route(MANAGER),
    ("GET", "pipelines.new"): Route(MANAGER),
    ("POST", "pipelines.new"): Route(MANAGER, form=lambda w: {"name": "Renewals", "currency": "EUR"}),
    ("GET", "pipelines.edit"): Route(MANAGER, args={"pipeline_id": "pipeline"}),
    ("POST", "pipelines.edit"): Route(
        MANAGER,
        args={"pipeline_id": "pipeline"},
        form=lambda w: {"name": "Renamed", "currency": "USD", "is_default": "y"},
    ),
    ("POST", "pipelines.set_default"): Route(MANAGER, args={"pipeline_id": "spare_pipeline"}, form=lambda w: {}),
    ("POST", "pipelines.reorder"): Route(
        MANAGER,
        args={"pipeline_id": "pipeline"},
        form=lambda w: {"stage_id": [str(i) for i in reversed(w.stage_order)]},
    ),
    ("GET", "pipelines.delete"): Route(MANAGER, args={"pipeline_id": "spare_pipeline"}),
    ("POST", "pipelines.delete"): Route(
        MANAGER, args={"pipeline_id": "spare_pipeline"}, form=lambda w: {"move_to_stage_id": ""}
    ),
    ("GET", "pipelines.new_stage"): Route(MANAGER, args={"pipeline_id": "pipeline"}),
    ("POST", "pipelines.new_stage"): Route(
        MANAGER, args={"pipeline_id": "pipeline"}, form=lambda w: {"name": "Demo", "probability": "30"}
    ),
    ("GET", "pipelines.edit_stage"): Route(MANAGER, args={"stage_id": "stage"}),
    ("POST", "pipelines.edit_stage"): Route(
        MANAGER, args={"stage_id": "stage"}, form=lambda w: {"name": "Qualified", "probability": "20"}
    ),
    ("GET", "pipelines.delete_stage"): Route(MANAGER, args={"stage_id": "empty_stage"}),
    ("POST", "pipelines.delete_stage"): Route(
        MANAGER, args={"stage_id": "empty_stage"}, form=lambda w: {"move_to_stage_id": ""}
    ),
    # --- settings: users, organisation, tags -------------------------------------------------
    ("GET", "settings.index"): Route(MANAGER),
    ("GET", "settings.users"): Route(MANAGER, query="q=a"),
    ("GET", "settings.new_user"): Route(ADMIN),
    ("POST", "settings.new_user"): Route(
        ADMIN, form=lambda w: {"name": "New Person", "email": f"new-{w.marker}@example.org", "role": "sales"}
    ),
    ("GET", "settings.user"): Route(MANAGER, args={"user_id": "sales"}),
    ("POST", "settings.change_role"): Route(ADMIN, args={"user_id": "sales"}, form=lambda w: {"role": "manager"}),
    ("GET", "settings.deactivate"): Route(ADMIN, args={"user_id": "invited"}),
    ("POST", "settings.deactivate"): Route(
        ADMIN, args={"user_id": "invited"}, form=lambda w: {"reassign_to": str(w["admin"])}
    ),
    ("POST", "settings.reactivate"): Route(ADMIN, args={"user_id": "deactivated"}, form=lambda w: {}),
    ("POST", "settings.password_link"): Route(ADMIN, args={"user_id": "invited"}, form=lambda w: {}),
    ("GET", "settings.organisation"): Route(ADMIN),
    ("POST", "settings.organisation"): Route(
        ADMIN,
        form=lambda w: {"name": "Renamed Org", "default_currency": "EUR", "time_zone": "Europe/Paris"},
    ),
    ("POST", "settings.stages_reviewed"): Route(MANAGER, form=lambda w: {}),
    ("GET", "settings.tags"): Route(MANAGER),
    ("POST", "settings.update_tag"): Route(
        MANAGER, args={"tag_id": "tag"}, form=lambda w: {"name": "Renamed tag", "color": "#112233"}
    ),
    ("POST", "settings.merge_tag"): Route(MANAGER, args={"tag_id": "tag"}, form=lambda w: {"into": str(w["tag2"])}),
    ("POST", "settings.delete_tag"): Route(MANAGER, args={"tag_id": "tag"}, form=lambda w: {}),
    ("POST", "settings.restore_tag"): Route(MANAGER, args={"tag_id": "trashed_tag"}, form=lambda w: {}),
    ("GET", "settings.currencies"): Route(MANAGER),
    ("POST", "settings.set_rate"): Route(ADMIN, form=lambda w: {"currency": "EUR", "rate": "1.1"}),
    ("POST", "settings.remove_rate"): Route(ADMIN, args={"currency": "=JPY"}),
    # --- custom fields (definitions: admins change, managers look) ----------------------------
    ("GET", "settings.fields"): Route(MANAGER),
    ("POST", "settings.create_field"): Route(
        ADMIN, args={"entity_name": "=company"}, form=lambda w: {"label": "Region", "type": "text"}
    ),
    ("GET", "settings.field"): Route(MANAGER, args={"entity_name": "=company", "field_id": "=secfield"}),
    ("POST", "settings.update_field"): Route(
        ADMIN,
        args={"entity_name": "=company", "field_id": "=secfield"},
        form=lambda w: {"label": "Sec", "type": "text"},
    ),
    ("POST", "settings.delete_field"): Route(ADMIN, args={"entity_name": "=company", "field_id": "=secfield"}),
    ("POST", "settings.restore_field"): Route(ADMIN, args={"entity_name": "=company", "field_id": "=sectrash"}),
    ("POST", "settings.purge_field"): Route(ADMIN, args={"entity_name": "=company", "field_id": "=sectrash"}),
    # --- tags -------------------------------------------------------------------------------
    ("GET", "tags.editor"): Route(MEMBER, args={"entity_type": "=contact", "entity_id": "contact"}),
    ("POST", "tags.assign"): Route(
        OWNER, args={"entity_type": "=contact", "entity_id": "contact"}, form=lambda w: {"tag_id": str(w["tag"])}
    ),
    ("POST", "tags.remove"): Route(
        OWNER, args={"entity_type": "=contact", "entity_id": "contact"}, form=lambda w: {"tag_id": str(w["tag"])}
    ),
    # --- saved views ------------------------------------------------------------------------
    ("GET", "saved_views.tabs"): Route(MEMBER, args={"list_key": "=deals"}),
    ("POST", "saved_views.create"): Route(
        MEMBER, args={"list_key": "=deals"}, form=lambda w: {"name": "Mine", "query": "q=a", "visibility": "private"}
    ),
    ("POST", "saved_views.update"): Route(OWNER, args={"view_id": "view"}, form=lambda w: {"query": "q=b"}),
    ("POST", "saved_views.delete"): Route(OWNER, args={"view_id": "view"}, form=lambda w: {}),
    ("POST", "saved_views.restore"): Route(DELETER, args={"view_id": "trashed_view"}, form=lambda w: {}),
    ("POST", "saved_views.reorder"): Route(
        MEMBER, args={"list_key": "=deals"}, form=lambda w: {"key": ["won-deals", str(w["view"])]}
    ),
    ("POST", "saved_views.set_default"): Route(
        MEMBER, args={"list_key": "=deals"}, form=lambda w: {"key": "won-deals"}
    ),
    ("POST", "saved_views.set_hidden"): Route(
        MEMBER, args={"list_key": "=deals"}, form=lambda w: {"key": "won-deals", "hidden": "1"}
    ),
    # --- trash ------------------------------------------------------------------------------
    ("GET", "duplicates.index"): Route(MEMBER, args={"plural": "=companies"}),
    ("GET", "duplicates.check"): Route(MEMBER, args={"plural": "=companies"}, query="name=Acme&phone=5550001111"),
    ("GET", "duplicates.merge_form"): Route(
        MANAGER, args={"plural": "=companies"}, query="ids={company}&ids={company2}"
    ),
    ("POST", "duplicates.dismiss"): Route(
        MANAGER, args={"plural": "=companies"}, form=lambda w: {"ids": [str(w["company"]), str(w["company2"])]}
    ),
    ("POST", "duplicates.merge"): Route(
        MANAGER,
        args={"plural": "=companies"},
        form=lambda w: {"ids": [str(w["company"]), str(w["company2"])], "survivor": str(w["company"])},
    ),
    ("POST", "duplicates.scan"): Route(MEMBER, args={"plural": "=companies"}, form=lambda w: {}),
    ("POST", "duplicates.propose"): Route(
        MEMBER, args={"plural": "=companies"}, form=lambda w: {"ids": [str(w["company"]), str(w["company2"])]}
    ),
    ("POST", "duplicates.dismiss_proposal"): Route(
        MANAGER, args={"plural": "=companies", "proposal_id": "proposal"}, form=lambda w: {}
    ),
    ("POST", "duplicates.undo"): Route(MANAGER, args={"merge_id": "merge"}, form=lambda w: {}),
    ("GET", "duplicates.undo_confirm"): Route(MANAGER, args={"merge_id": "merge"}),
    ("GET", "duplicates.merged_history"): Route(MEMBER, args={"merge_id": "merge"}),
    ("GET", "trash.index"): Route(MANAGER),
    ("GET", "trash.detail"): Route(MANAGER, args={"entity_type": "=contact", "entity_id": "trashed_contact"}),
    ("GET", "trash.confirm_purge"): Route(ADMIN, query="item=contact:{trashed_contact}"),
    ("POST", "trash.purge"): Route(ADMIN, form=lambda w: {"item": f"contact:{w['trashed_contact']}"}),
    ("POST", "trash.restore"): Route(DELETER, form=lambda w: {"item": f"contact:{w['trashed_contact']}"}),
}

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def url_map_routes(app) -> dict[tuple[str, str], Any]:
    """Every (method, endpoint) the app answers, static files excepted."""
    found = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found[(method, rule.endpoint)] = rule
    return found


def uuid_arguments(rule) -> list[str]:
    from werkzeug.routing import UUIDConverter

    return [name for name, converter in rule._converters.items() if isinstance(converter, UUIDConverter)]


def route_url(app, endpoint: str, route: Route, world: World, *, ids_from: World | None = None) -> str:
    """The route's URL for `world`; `ids_from` substitutes another world's ids for the uuid arguments."""
    from flask import url_for

    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    uuid_args = set(uuid_arguments(rule))
    values: dict[str, Any] = {}
    for name, source in route.args.items():
        if source.startswith("="):
            values[name] = source[1:]
        else:
            values[name] = (ids_from or world)[source] if name in uuid_args else world[source]
    with app.test_request_context():
        url = url_for(endpoint, **values)
    if route.query:
        url += "?" + route.query.format(**{k: str(v) for k, v in world.ids.items()}).replace("marker", world.marker)
    return url


def call(
    client,
    app,
    method: str,
    endpoint: str,
    world: World,
    *,
    ids_from: World | None = None,
    headers: dict[str, str] | None = None,
    csrf: bool = True,
):
    route = ROUTES[(method, endpoint)]
    url = route_url(app, endpoint, route, world, ids_from=ids_from)
    data = route.form(world) if route.form else None
    response = client.open(url, method=method, data=data, headers=headers or {}, csrf=csrf)
    response.get_data()  # a streamed body (CSV) must finish inside the request's own context
    return response


def outcome(response) -> str:
    """Classify a response as the access table does."""
    location = response.headers.get("Location", "")
    if response.status_code in (301, 302, 303) and location.split("?")[0].endswith("/login"):
        return REDIRECT
    if response.status_code == 401:
        return UNAUTHORIZED
    if response.status_code == 403:
        return FORBIDDEN
    if response.status_code < 400:
        return ALLOWED
    return f"unexpected {response.status_code}"

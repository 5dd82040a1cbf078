"""Settings: the team (admins change it, managers look), the organisation (admins), and tags
(managers). Pipelines have their own blueprint; the Settings navigation groups all four."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user

from crm_web.auth import renew_session
from crm_web.custom_fields import COLOURS, CUSTOM_ENTITIES, FIELD_TYPES
from crm_web.entities import entity
from crm_web.errors import NotFound, ValidationError
from crm_web.forms import apply_errors, submit
from crm_web.forms.settings import DeactivateForm, NewUserForm, OrganisationForm, RoleForm, TagForm
from crm_web.htmx import hx_location, is_htmx, wants_fragment
from crm_web.models import Role
from crm_web.params import get_text_param, get_uuid_param, parse_uuid
from crm_web.permissions import require_role
from crm_web.rendering import render_page, with_toast, with_undo
from crm_web.services.currencies import ExchangeRateService
from crm_web.services.custom_fields import CustomFieldService, field_input
from crm_web.services.organisations import OrganisationService
from crm_web.services.tags import TagService
from crm_web.services.users import PasswordLink, UserService
from crm_web.views.generic import acting

bp = Blueprint("settings", __name__)

USERS = "settings/users.html"
USER = "settings/user.html"


def _users() -> UserService:
    return acting(UserService)


def _link_url(link: PasswordLink) -> str:
    return url_for("auth.set_password", token=link.token, _external=True)


@bp.get("/settings")
def index():
    require_role(current_user.role, Role.MANAGER, "open the settings")
    return redirect(url_for("settings.users"), 303)


# --- the team ----------------------------------------------------------------------------


@bp.get("/settings/users")
def users():
    q = get_text_param("q", max_length=100)
    return render_page(USERS, block="user_table", rows=_users().list_page(q=q), q=q, title="Users")


@bp.route("/settings/users/new", methods=["GET", "POST"], endpoint="new_user")
def new_user():
    service = _users()
    require_role(current_user.role, Role.ADMIN, "add users")
    form = NewUserForm()
    if form.validate_on_submit():
        wants_password = form.access.data == "password"
        if wants_password and not form.password.data:
            form.password.errors = ["Enter the initial password, or send an invitation link instead."]
        else:
            try:
                user, link = service.create(
                    name=form.name.data,
                    email=form.email.data,
                    role=form.role.data,
                    password=form.password.data if wants_password else None,
                )
            except ValidationError as error:
                apply_errors(form, error)
            else:
                if link is None:
                    flash(f"{user.name} was added. They must choose their own password when they first sign in.")
                    return redirect(url_for("settings.user", user_id=user.id), 303)
                return render_page("settings/link.html", link=link, url=_link_url(link), title="Invitation link")
    return render_page("settings/new_user.html", form=form, title="Add a user", status=422 if form.errors else 200)


def _user_page(user_id: uuid.UUID, *, status: int = 200, role_form: RoleForm | None = None):
    service = _users()
    row, history = service.detail(user_id)
    role_form = role_form or RoleForm(data={"role": row.user.role})
    return render_page(USER, row=row, history=history, role_form=role_form, title=row.user.name, status=status)


@bp.get("/settings/users/<uuid:user_id>")
def user(user_id: uuid.UUID):
    return _user_page(user_id)


@bp.post("/settings/users/<uuid:user_id>/role")
def change_role(user_id: uuid.UUID):
    service = _users()
    form = RoleForm()
    changed = submit(form, lambda: service.change_role(user_id, role=form.role.data))
    if changed is not None:
        if changed.id == current_user.id:
            renew_session(changed)  # the admin's own role: this browser stays signed in
        flash(f"{changed.name} is now {changed.role}. Their sessions ended; they sign in again with it.")
        return redirect(url_for("settings.user", user_id=user_id), 303)
    return _user_page(user_id, status=422, role_form=form)


@bp.route("/settings/users/<uuid:user_id>/deactivate", methods=["GET", "POST"], endpoint="deactivate")
def deactivate(user_id: uuid.UUID):
    service = _users()
    require_role(current_user.role, Role.ADMIN, "deactivate users")
    row, _ = service.detail(user_id)
    form = DeactivateForm()
    form.reassign_to.choices = [("", "Nobody: they keep it")] + [
        (str(uid), name) for uid, name in service.reassign_choices(user_id)
    ]
    done = submit(form, lambda: service.deactivate(user_id, reassign_to=form.reassign_to.data))
    if done is not None:
        message = f"{done.user.name} was deactivated"
        message += f"; {done.summary} went to {done.to_name}." if done.summary else "."
        flash(message)
        return redirect(url_for("settings.user", user_id=user_id), 303)
    return render_page(
        "settings/deactivate.html",
        form=form,
        row=row,
        title=f"Deactivate {row.user.name}",
        status=422 if form.errors else 200,
    )


@bp.post("/settings/users/<uuid:user_id>/reactivate")
def reactivate(user_id: uuid.UUID):
    """Reactivate; as the Undo of a deactivation (`entry`), their reassigned work comes back too."""
    entry = get_uuid_param("entry")
    user, returned = _users().reactivate(user_id, undo_entry=entry)
    flash(f"{user.name} is active again" + (f"; {returned} open records came back to them." if returned else "."))
    return redirect(url_for("settings.user", user_id=user_id), 303)


@bp.post("/settings/users/<uuid:user_id>/password-link")
def password_link(user_id: uuid.UUID):
    link = _users().password_link(user_id)
    title = "Password reset link" if link.purpose == "reset" else "Invitation link"
    return render_page("settings/link.html", link=link, url=_link_url(link), title=title)


# --- the organisation --------------------------------------------------------------------


@bp.route("/settings/organisation", methods=["GET", "POST"], endpoint="organisation")
def organisation():
    service = acting(OrganisationService)
    require_role(current_user.role, Role.ADMIN, "change the organisation's settings")
    org = service.get()
    form = OrganisationForm(obj=org)
    if form.validate_on_submit():
        try:
            service.update(
                name=form.name.data,
                default_currency=form.default_currency.data,
                time_zone=form.time_zone.data,
                trash_retention_days=form.trash_retention_days.data,
                sales_can_import=form.sales_can_import.data,
                sales_can_publish_views=form.sales_can_publish_views.data,
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            flash("The organisation's settings are saved.")
            return redirect(url_for("settings.organisation"), 303)
    return render_page(
        "settings/organisation.html", form=form, org=org, title="Organisation", status=422 if form.errors else 200
    )


@bp.post("/settings/organisation/stages-reviewed")
def stages_reviewed():
    acting(OrganisationService).mark_stages_reviewed()
    return redirect(url_for("dashboard.index"), 303)


# --- tags --------------------------------------------------------------------------------

TAGS = "settings/tags.html"


def _tags() -> TagService:
    return acting(TagService)


def _tag_list(service: TagService, message: str | None = None, *, undo_url: str | None = None, status: int = 200):
    """The tag list (its block for htmx, with a toast), or back to the page."""
    if not wants_fragment():
        if message:
            flash(message)
        return redirect(url_for("settings.tags"), 303)
    response = render_page(TAGS, block="tag_list", usages=service.usage_list(), status=status)
    if message and undo_url:
        return with_undo(response, message, undo_url=undo_url, target="#tag-list")
    return with_toast(response, message) if message else response


@bp.get("/settings/tags")
def tags():
    return render_page(TAGS, block="tag_list", usages=_tags().usage_list(), title="Tags")


@bp.post("/settings/tags/<uuid:tag_id>")
def update_tag(tag_id: uuid.UUID):
    service = _tags()
    form = TagForm()
    if not form.validate_on_submit():
        raise ValidationError("The tag was not saved", {k: v[0] for k, v in form.errors.items()})
    tag = service.rename(tag_id, name=form.name.data, color=form.color.data)
    return _tag_list(service, f"Tag {tag.name} saved.")


@bp.post("/settings/tags/<uuid:tag_id>/merge")
def merge_tag(tag_id: uuid.UUID):
    service = _tags()
    into = parse_uuid(request.form.get("into"), "into")
    if into is None:
        raise ValidationError("Choose the tag to merge into.", {"into": "Choose a tag."})
    source_name, tag = service.merge(tag_id, into_id=into)
    return _tag_list(service, f"{source_name} was merged into {tag.name}.")


@bp.post("/settings/tags/<uuid:tag_id>/delete")
def delete_tag(tag_id: uuid.UUID):
    service = _tags()
    tag = service.delete(tag_id)
    return _tag_list(service, f"Tag {tag.name} deleted.", undo_url=url_for("settings.restore_tag", tag_id=tag_id))


@bp.post("/settings/tags/<uuid:tag_id>/restore")
def restore_tag(tag_id: uuid.UUID):
    service = _tags()
    tag = service.restore(tag_id)
    return _tag_list(service, f"Tag {tag.name} restored.")


# --- currencies --------------------------------------------------------------------------

CURRENCIES_PAGE = "settings/currencies.html"


def _currencies_page(service: ExchangeRateService, *, errors: dict[str, str] | None = None, status: int = 200):
    base, rows = service.rows()
    return render_page(CURRENCIES_PAGE, base=base, rows=rows, errors=errors or {}, title="Currencies", status=status)


@bp.get("/settings/currencies")
def currencies():
    return _currencies_page(acting(ExchangeRateService))


@bp.post("/settings/currencies")
def set_rate():
    service = acting(ExchangeRateService)
    currency = (request.form.get("currency") or "").strip()[:3]
    try:
        service.set_rate(currency, request.form.get("rate", "")[:40])
    except ValidationError as error:
        return _currencies_page(service, errors=error.field_errors, status=422)
    flash(f"The {currency} rate is saved.")
    return redirect(url_for("settings.currencies"), 303)


@bp.post("/settings/currencies/<currency>/delete")
def remove_rate(currency: str):
    acting(ExchangeRateService).remove_rate(currency[:3])
    flash(f"The {currency[:3]} rate is removed: its deals are shown apart from every sum.")
    return redirect(url_for("settings.currencies"), 303)


# --- custom fields -----------------------------------------------------------------------

FIELDS_PAGE = "settings/fields.html"
FIELD_PAGE = "settings/field.html"


def _entity_arg(value: str | None) -> str:
    name = (value or "contact").strip()[:20]
    if name not in CUSTOM_ENTITIES:
        raise NotFound("Custom fields exist for contacts, companies, leads and deals.")
    return name


def _fields_page(entity_name: str, *, errors: dict[str, str] | None = None, given: Any = None, status: int = 200):
    service = acting(CustomFieldService)
    return render_page(
        FIELDS_PAGE,
        entity_name=entity_name,
        entities=[entity(name) for name in CUSTOM_ENTITIES],
        fields=service.fields(entity_name),
        trashed=service.fields(entity_name, trashed=True),
        field_types=FIELD_TYPES,
        colours=COLOURS,
        errors=errors or {},
        given=given,
        title="Custom fields",
        status=status,
    )


@bp.get("/settings/fields")
def fields():
    return _fields_page(_entity_arg(request.args.get("entity")))


@bp.post("/settings/fields/<entity_name>")
def create_field(entity_name: str):
    entity_name = _entity_arg(entity_name)
    service = acting(CustomFieldService)
    given = None
    try:
        given = field_input(request.form, request.form.getlist)
        cf = service.create(entity_name, given)
    except ValidationError as error:
        return _fields_page(entity_name, errors=_errors(error), given=given, status=422)
    flash(f"The field {cf.label} was added.")
    return redirect(url_for("settings.fields", entity=entity_name), 303)


def _errors(error: ValidationError) -> dict[str, str]:
    return error.field_errors or {"form": error.message}


def _field_page(entity_name: str, field_id: str, *, errors: dict[str, str] | None = None, status: int = 200):
    cf = acting(CustomFieldService).get(entity_name, field_id)
    return render_page(
        FIELD_PAGE,
        entity_name=entity_name,
        entity_label=entity(entity_name).label,
        cf=cf,
        field_types=FIELD_TYPES,
        colours=COLOURS,
        errors=errors or {},
        title=f"Field {cf.label}",
        status=status,
    )


@bp.get("/settings/fields/<entity_name>/<field_id>")
def field(entity_name: str, field_id: str):
    return _field_page(_entity_arg(entity_name), field_id[:40])


@bp.post("/settings/fields/<entity_name>/<field_id>")
def update_field(entity_name: str, field_id: str):
    entity_name, field_id = _entity_arg(entity_name), field_id[:40]
    service = acting(CustomFieldService)
    try:
        cf = service.update(entity_name, field_id, field_input(request.form, request.form.getlist))
    except ValidationError as error:
        return _field_page(entity_name, field_id, errors=_errors(error), status=422)
    flash(f"The field {cf.label} was saved.")
    return redirect(url_for("settings.fields", entity=entity_name), 303)


@bp.post("/settings/fields/<entity_name>/<field_id>/delete")
def delete_field(entity_name: str, field_id: str):
    entity_name = _entity_arg(entity_name)
    cf = acting(CustomFieldService).delete(entity_name, field_id[:40])
    flash(f"The field {cf.label} is in the trash with its values: restore it below.")
    return redirect(url_for("settings.fields", entity=entity_name), 303)


def _back_from_trash_action(entity_name: str):
    """Restore and purge are also buttons of the trash page (`back=trash`): they return there."""
    if request.form.get("back") == "trash":
        # The purge button posts with htmx (its confirmation): it navigates like a link.
        return hx_location(url_for("trash.index")) if is_htmx() else redirect(url_for("trash.index"), 303)
    return redirect(url_for("settings.fields", entity=entity_name), 303)


@bp.post("/settings/fields/<entity_name>/<field_id>/restore")
def restore_field(entity_name: str, field_id: str):
    entity_name = _entity_arg(entity_name)
    try:
        cf = acting(CustomFieldService).restore(entity_name, field_id[:40])
    except ValidationError as error:
        return _fields_page(entity_name, errors=_errors(error), status=422)
    flash(f"The field {cf.label} is back, with its values.")
    return _back_from_trash_action(entity_name)


@bp.post("/settings/fields/<entity_name>/<field_id>/purge")
def purge_field(entity_name: str, field_id: str):
    entity_name = _entity_arg(entity_name)
    try:
        cf = acting(CustomFieldService).purge(entity_name, field_id[:40])
    except ValidationError as error:
        return _fields_page(entity_name, errors=_errors(error), status=422)
    flash(f"The field {cf.label} and its values are gone for good.")
    return _back_from_trash_action(entity_name)

"""The views every entity's list and forms share, declared once and registered per entity.

`ListViews` gives an entity its list page (search, filter builder, sort, pages), the table
fragment, the CSV export and the bulk actions (`BulkActions`, also used by the activities list):
delete, tag, untag, owner (and for activities complete and reschedule), each with Undo.
`FormViews` gives it new/create/edit/update with inline validation (422) and the stale-edit
conflict (409). Both keep the endpoint names of the house (`contacts.index`, `contacts.bulk_delete`,
`contacts.edit`, ...), read their names from the entity registry, and leave to the entity's view
module only what is special to it (extra context, the form's choices).

Templates: the list page is `<plural>/index.html` with the block `<name>_table` (DOM id
`#<name>-table`); the form page `<plural>/form.html` with the block `<name>_form`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from types import SimpleNamespace
from typing import Any, TypeVar

from flask import Blueprint, abort, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from crm_web import columns, idempotency
from crm_web.csv_export import entity_csv_response, planned_csv_response
from crm_web.entities import Entity
from crm_web.errors import Conflict, ValidationError, error_response
from crm_web.forms import apply_conflict, apply_errors
from crm_web.htmx import hx_location, hx_trigger, wants_fragment
from crm_web.params import get_uuid_list, parse_uuid
from crm_web.permissions import can
from crm_web.rendering import plural, render_page, see_other, with_toast, with_undo
from crm_web.services.base import Actor, BaseService
from crm_web.services.history import jsonable
from crm_web.views.columns import save_columns, visible_columns
from crm_web.views.filtering import (
    FilterBuilder,
    builder_fields,
    checked_for_export,
    owner_choices_of,
    parse_filtered_list_query,
    render_list_page,
)
from crm_web.views.listing import ListQuery
from crm_web.views.saved_views import ListOpening, open_list

S = TypeVar("S")


def acting(service_class: Callable[[Actor], S]) -> S:
    """The service bound to the signed-in user (their organisation, role and time zone)."""
    return service_class(Actor.of(current_user))


NOTHING_DELETED = "Nothing was deleted: the selected records are already in the trash or no longer exist."


class ListViews:
    """An entity's list page and the actions taken from it."""

    def __init__(
        self,
        bp: Blueprint,
        entity: Entity,
        service_class: type[BaseService[Any]],
        *,
        changed_event: str | None = None,
        extra_context: Callable[[Any], dict[str, Any]] | None = None,
    ):
        self.bp = bp
        self.entity = entity
        self.service_class = service_class
        self.changed_event = changed_event  # sent after a change from the list (other panels refresh)
        self.extra_context = extra_context
        self.template = f"{entity.plural}/index.html"
        self.table_block = f"{entity.name}_table"
        self.table_id = f"#{entity.name}-table"
        bp.add_url_rule(f"/{entity.plural}", "index", self.index, methods=["GET"])
        if entity.csv:
            bp.add_url_rule(f"/{entity.plural}/export.csv", "export", self.export, methods=["GET"])
        if entity.name in columns.BUILT_IN:
            bp.add_url_rule(f"/{entity.plural}/columns", "columns", self.save_columns, methods=["POST"])
        self.bulk = BulkActions(bp, entity, service_class, table=self.table, table_id=self.table_id)

    def service(self) -> Any:
        return acting(self.service_class)

    def _open(self) -> tuple[ListQuery, FilterBuilder, ListOpening]:
        """The list state of the request, after opening the saved view it names (views/saved_views)."""
        opening = open_list(self.entity.plural)
        fields = self.service().filter_fields()  # the organisation's custom fields included
        query, builder = parse_filtered_list_query(fields, opening.args)
        return opening.apply(query, fields), builder, opening

    def _query(self) -> tuple[ListQuery, FilterBuilder]:
        query, builder, _ = self._open()
        return query, builder

    def _count(self, n: int) -> str:
        return plural(n, self.entity.name, self.entity.plural)

    @property
    def list_url(self) -> str:
        return url_for(f"{self.bp.name}.index")

    def context(
        self, service: Any, query: ListQuery, builder: FilterBuilder, opening: ListOpening | None = None
    ) -> dict[str, Any]:
        """Everything the list page and its blocks show: the page of rows, the pickers' choices (one
        statement), the builder's fields and the saved view it shows."""
        page = service.list_page(**query.page_args())
        choices = service.choices()
        fields_meta = builder_fields(
            service.filter_fields(), tags=choices.tags, choices=owner_choices_of(service, choices.owners)
        )
        shown = self.visible_columns(query)
        context = {
            "entity": self.entity,
            "visible_columns": shown,
            "all_columns": columns.available(self.entity.name, current_user.org.custom_fields),
            "page": page,
            "choices": choices,
            "fields_meta": fields_meta,
            "query": query,
            "builder": builder,
            "list_url": self.list_url,
            "opening": opening,
            "view_state": query.state_pairs(),
        }
        if self.extra_context is not None:
            context.update(self.extra_context(service))
        return context

    def visible_columns(self, query: ListQuery) -> list[columns.Column]:
        return visible_columns(self.entity.name, query)

    def save_columns(self) -> ResponseReturnValue:
        query, _ = self._query()
        return save_columns(self.entity.name, query, self.list_url)

    def index(self) -> ResponseReturnValue:
        query, builder, opening = self._open()
        return render_list_page(
            self.template, table_block=self.table_block, **self.context(self.service(), query, builder, opening)
        )

    def export(self) -> ResponseReturnValue:
        query, builder, _ = self._open()
        query = checked_for_export(query, builder)
        service = self.service()
        rows = service.export_rows(filter_spec=query.filter_spec, q=query.q, scope=query.scope, sort=query.sort)
        custom = service.custom_fields()
        shown = None if request.args.get("all") or not query.cols else self.visible_columns(query)
        if not custom and shown is None:
            return entity_csv_response(
                self.entity, rows, day=service.actor.today(), currency=current_user.org.default_currency
            )
        plan = columns.csv_plan(self.entity, shown, custom)
        users = {str(i): n for i, n in service.owner_choices()} if any(cf.type == "user" for cf in custom) else {}
        return planned_csv_response(
            self.entity, rows, plan, users, day=service.actor.today(), currency=current_user.org.default_currency
        )

    def table(self, service: Any) -> Any:
        """After a POST from the list: the table block in the list state of the query string."""
        query, builder, opening = self._open()
        if not wants_fragment():
            return see_other(query.url(self.list_url))
        response = render_page(self.template, block=self.table_block, **self.context(service, query, builder, opening))
        return hx_trigger(response, self.changed_event) if self.changed_event else response


class BulkActions:
    """The bulk actions of an entity's list, the same on every list: delete, add and remove a tag (when
    the entity has tags), change the owner, and for activities complete and reschedule. Each answers
    with the list's table block (`table(service)`) and a toast whose Undo reverts exactly the rows it
    changed: restore for a delete, the opposite tag action, and for a field the rows' own previous values
    (`bulk_revert`). The services check organisation, role (permissions.can) and whitelist; the version
    of every changed row moves on, so a form opened before is stale.

    Endpoints: `<plural>.bulk_delete`, `.restore_many`, `.bulk_tag`, `.bulk_untag`, `.bulk_owner`,
    `.bulk_complete`, `.bulk_reschedule`, `.bulk_revert` (the Undo of a field change)."""

    def __init__(
        self,
        bp: Blueprint,
        entity: Entity,
        service_class: type[BaseService[Any]],
        *,
        table: Callable[[Any], Any],
        table_id: str,
        fields: tuple[str, ...] = ("owner_id",),
    ):
        self.bp = bp
        self.entity = entity
        self.service_class = service_class
        self.table = table
        self.table_id = table_id
        rules: list[tuple[str, str, Callable[[], ResponseReturnValue]]] = [
            ("delete", "bulk_delete", self.bulk_delete),
            ("restore", "restore_many", self.restore_many),
        ]
        if entity.taggable:
            rules += [("tag", "bulk_tag", self.bulk_tag), ("untag", "bulk_untag", self.bulk_untag)]
        if "owner_id" in fields:
            rules.append(("owner", "bulk_owner", self.bulk_owner))
        if "status" in fields:
            rules.append(("complete", "bulk_complete", self.bulk_complete))
        if "due_at" in fields:
            rules.append(("reschedule", "bulk_reschedule", self.bulk_reschedule))
        if fields:
            rules.append(("revert", "bulk_revert", self.bulk_revert))
        for action, endpoint, view in rules:
            bp.add_url_rule(f"/{entity.plural}/bulk/{action}", endpoint, view, methods=["POST"])

    def service(self) -> Any:
        return acting(self.service_class)

    def _count(self, n: int) -> str:
        return plural(n, self.entity.name, self.entity.plural)

    def _url(self, endpoint: str) -> str:
        """The endpoint with the list state of this request (so the answer shows the same list)."""
        url = url_for(f"{self.bp.name}.{endpoint}")
        query = request.query_string.decode()
        return f"{url}?{query}" if query else url

    def _nothing(self, service: Any, message: str) -> ResponseReturnValue:
        return with_toast(self.table(service), message, "info")

    def bulk_delete(self) -> ResponseReturnValue:
        """Bulk delete (the list's per-row delete is a bulk delete of one), with Undo."""
        service = self.service()
        deleted = service.delete_many(get_uuid_list("ids"))
        if not deleted:  # already deleted by someone else, or never ours to see: nothing to undo
            return self._nothing(service, NOTHING_DELETED)
        return with_undo(
            self.table(service),
            f"Deleted {self._count(len(deleted))}.",
            undo_url=self._url("restore_many"),
            ids=deleted,
            target=self.table_id,
        )

    def restore_many(self) -> ResponseReturnValue:
        service = self.service()
        restored = service.restore_many(get_uuid_list("ids"))
        return with_toast(self.table(service), f"Restored {self._count(len(restored))}.")

    def _tag_id(self) -> uuid.UUID:
        return parse_uuid(request.form.get("tag_id"), "tag_id") or abort(400, "Choose a tag.")

    def bulk_tag(self) -> ResponseReturnValue:
        tag_id = self._tag_id()
        service = self.service()
        tagged = service.bulk_add_tag(get_uuid_list("ids"), tag_id=tag_id)
        if not tagged:
            return self._nothing(service, "Nothing changed: the selected records already have this tag.")
        return with_undo(
            self.table(service),
            f"Tagged {self._count(len(tagged))}.",
            undo_url=self._url("bulk_untag"),
            ids=tagged,
            vals={"tag_id": str(tag_id)},
            target=self.table_id,
        )

    def bulk_untag(self) -> ResponseReturnValue:
        tag_id = self._tag_id()
        service = self.service()
        untagged = service.bulk_remove_tag(get_uuid_list("ids"), tag_id=tag_id)
        if not untagged:
            return self._nothing(service, "Nothing changed: none of the selected records has this tag.")
        return with_undo(
            self.table(service),
            f"Removed the tag from {self._count(len(untagged))}.",
            undo_url=self._url("bulk_tag"),
            ids=untagged,
            vals={"tag_id": str(tag_id)},
            target=self.table_id,
        )

    def bulk_owner(self) -> ResponseReturnValue:
        owner_id = parse_uuid(request.form.get("owner_id"), "owner_id") or abort(400, "Choose an owner.")
        service = self.service()
        previous = service.bulk_change_owner(get_uuid_list("ids"), owner_id=owner_id)
        # A sales user who gave their records away may no longer change them: no Undo they would be refused.
        undoable = can(service.actor, "change", SimpleNamespace(owner_id=owner_id))
        return self._field_changed(service, "owner_id", previous, f"Reassigned {self._count(len(previous))}.", undoable)

    def bulk_complete(self) -> ResponseReturnValue:
        service = self.service()
        previous = service.bulk_complete(get_uuid_list("ids"))
        return self._field_changed(service, "status", previous, f"Completed {self._count(len(previous))}.")

    def bulk_reschedule(self) -> ResponseReturnValue:
        raw = (request.form.get("due_date") or "").strip()
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            abort(400, "Choose a date to reschedule to.")
        service = self.service()
        previous = service.bulk_reschedule(get_uuid_list("ids"), day=day)
        return self._field_changed(service, "due_at", previous, f"Rescheduled {self._count(len(previous))}.")

    def _field_changed(
        self, service: Any, name: str, previous: dict[uuid.UUID, Any], message: str, undoable: bool = True
    ) -> ResponseReturnValue:
        if not previous:
            return self._nothing(service, "Nothing changed: the selected records already had that value.")
        if not undoable:
            return with_toast(self.table(service), message)
        return with_undo(
            self.table(service),
            message,
            undo_url=self._url("bulk_revert"),
            ids=list(previous),
            vals={"field": name, "previous": [jsonable(value) or "" for value in previous.values()]},
            target=self.table_id,
        )

    def bulk_revert(self) -> ResponseReturnValue:
        """The Undo of a field change: each row back to its own previous value (`ids` and `previous` in
        the same order)."""
        name = request.form.get("field") or ""
        ids = get_uuid_list("ids")
        raw = request.form.getlist("previous")
        if len(raw) != len(ids):
            abort(400, "Every record needs its previous value.")
        service = self.service()
        values = {entity_id: service.parse_bulk_value(name, value) for entity_id, value in zip(ids, raw, strict=True)}
        reverted = service.bulk_revert(name, values)
        return with_toast(self.table(service), f"Undone for {self._count(len(reverted))}.")


class FormViews:
    """An entity's create and edit forms: GET renders, POST saves; errors inline (422), a stale
    version is a conflict (409) that keeps the typed values; success navigates to the detail page."""

    def __init__(
        self,
        bp: Blueprint,
        entity: Entity,
        service_class: type[BaseService[Any]],
        form_class: Callable[..., Any],
        *,
        form_context: Callable[[Any, Any, Any], dict[str, Any]],
    ):
        self.bp = bp
        self.entity = entity
        self.service_class = service_class
        self.form_class = form_class
        self.form_context = form_context  # (service, form, record or None) -> choices set, extra context
        self.template = f"{entity.plural}/form.html"
        self.form_block = f"{entity.name}_form"
        id_rule = f"/{entity.plural}/<uuid:{entity.id_arg}>"
        bp.add_url_rule(f"/{entity.plural}/new", "new", self.new, methods=["GET"])
        bp.add_url_rule(f"/{entity.plural}", "create", self.create, methods=["POST"])
        bp.add_url_rule(f"{id_rule}/edit", "edit", self.edit, methods=["GET"])
        bp.add_url_rule(id_rule, "update", self.update, methods=["POST"])

    def service(self) -> Any:
        return acting(self.service_class)

    def _context(self, service: Any, form: Any, record: Any = None) -> dict[str, Any]:
        if record is None:  # a create form: a fresh key for its submit (crm_web/idempotency.py)
            form.idempotency_key = idempotency.new_key()
        return {
            "entity": self.entity,
            "form": form,
            self.entity.name: record,
            **self.form_context(service, form, record),
        }

    def new(self) -> ResponseReturnValue:
        service = self.service()
        return render_page(self.template, **self._context(service, self.form_class(owner_id=current_user.id)))

    def create(self) -> ResponseReturnValue:
        key = idempotency.parse(request.form.get(idempotency.FIELD))
        if key is None:
            return self._save(self.service(), self.form_class())
        user_id, entity = current_user.id, self.entity.name
        previous = idempotency.claim(user_id, entity, key)
        if previous == idempotency.PENDING:
            return error_response(409, f"This {entity} is being saved already: reload the list in a moment.")
        if previous is not None:  # sent again: the first submit's answer, on to what it created
            return self._saved(previous)
        saved: list[Any] = []
        try:
            return self._save(self.service(), self.form_class(), saved=saved)
        finally:
            if saved:
                idempotency.remember(user_id, entity, key, saved[0].id)
            else:
                idempotency.release(user_id, entity, key)

    def edit(self, **ids: uuid.UUID) -> ResponseReturnValue:
        service = self.service()
        record = service.get_for_edit(ids[self.entity.id_arg])  # a form the user could not save is not offered
        return render_page(self.template, **self._context(service, self.form_class(obj=record), record))

    def update(self, **ids: uuid.UUID) -> ResponseReturnValue:
        service = self.service()
        return self._save(service, self.form_class(), service.get_for_edit(ids[self.entity.id_arg]))

    def _saved(self, record_id: Any) -> ResponseReturnValue:
        assert self.entity.detail_endpoint is not None
        values: dict[str, Any] = {self.entity.id_arg: record_id}
        url = url_for(self.entity.detail_endpoint, **values)
        return hx_location(url) if wants_fragment() else see_other(url)

    def _save(
        self, service: Any, form: Any, record: Any = None, *, saved: list[Any] | None = None
    ) -> ResponseReturnValue:
        context = self._context(service, form, record)
        status = 422
        if form.validate_on_submit():
            from crm_web.views.custom import custom_input

            custom = custom_input(self.entity.name)
            try:
                result = (
                    service.update(
                        record.id, expected_version=form.expected_version, custom_input=custom, **form.values()
                    )
                    if record is not None
                    else service.create(custom_input=custom, **form.values())
                )
            except ValidationError as error:
                apply_errors(form, error)
            except Conflict as error:  # a stale form: shown again with the typed values and who changed it
                apply_conflict(form, error)
                status = 409
            else:
                if saved is not None:
                    saved.append(result)
                return self._saved(result.id)
        return render_page(self.template, block=self.form_block, status=status, **context)


class RecordViews:
    """An entity's delete from its detail page (the main block becomes a "deleted" placeholder with an
    Undo toast) and the restore that Undo posts (back to the detail page)."""

    def __init__(
        self,
        bp: Blueprint,
        entity: Entity,
        service_class: type[BaseService[Any]],
        *,
        deleted_message: Callable[[Any], str],
    ):
        self.bp = bp
        self.entity = entity
        self.service_class = service_class
        self.deleted_message = deleted_message
        id_rule = f"/{entity.plural}/<uuid:{entity.id_arg}>"
        bp.add_url_rule(f"{id_rule}/delete", "delete", self.delete, methods=["POST"])
        bp.add_url_rule(f"{id_rule}/restore", "restore", self.restore, methods=["POST"])

    def service(self) -> Any:
        return acting(self.service_class)

    def _url(self, endpoint: str, record: Any) -> str:
        values: dict[str, Any] = {self.entity.id_arg: record.id}
        return url_for(f"{self.bp.name}.{endpoint}", **values)

    def delete(self, **ids: uuid.UUID) -> ResponseReturnValue:
        record = self.service().delete(ids[self.entity.id_arg])
        if not wants_fragment():
            return see_other(url_for(f"{self.bp.name}.index"))
        context = {self.entity.name: record, "deleted": True}
        response = render_page(f"{self.entity.plural}/detail.html", block=f"{self.entity.name}_main", **context)
        return with_undo(response, self.deleted_message(record), undo_url=self._url("restore", record))

    def restore(self, **ids: uuid.UUID) -> ResponseReturnValue:
        record = self.service().restore(ids[self.entity.id_arg])
        url = self._url("detail", record)
        return hx_location(url) if wants_fragment() else see_other(url)

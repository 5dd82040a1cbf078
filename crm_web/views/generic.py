"""The views every entity's list and forms share, declared once and registered per entity.

`ListViews` gives an entity its list page (search, filter builder, sort, pages), the table
fragment, the CSV export, bulk delete with Undo (bulk restore) and, when asked, bulk tag and owner
change. `FormViews` gives it new/create/edit/update with inline validation (422) and the stale-edit
conflict (409). Both keep the endpoint names of the house (`contacts.index`, `contacts.bulk_delete`,
`contacts.edit`, ...), read their names from the entity registry, and leave to the entity's view
module only what is special to it (extra context, the form's choices).

Templates: the list page is `<plural>/index.html` with the block `<name>_table` (DOM id
`#<name>-table`); the form page `<plural>/form.html` with the block `<name>_form`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, abort, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from crm_web import columns
from crm_web.csv_export import entity_csv_response, planned_csv_response
from crm_web.entities import Entity
from crm_web.errors import Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors
from crm_web.htmx import hx_location, hx_trigger, wants_fragment
from crm_web.params import get_uuid_list, parse_uuid
from crm_web.rendering import plural, render_page, see_other, with_toast, with_undo
from crm_web.services.base import Actor, BaseService
from crm_web.views.columns import save_columns, visible_columns
from crm_web.views.filtering import (
    FilterBuilder,
    builder_fields,
    owner_choices_of,
    parse_export_query,
    parse_filtered_list_query,
    render_list_page,
)
from crm_web.views.listing import ListQuery

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
        bulk_tag_and_owner: bool = False,
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
        rules: list[tuple[str, str, Callable[..., ResponseReturnValue], list[str]]] = [
            (f"/{entity.plural}", "index", self.index, ["GET"]),
            (f"/{entity.plural}/bulk/delete", "bulk_delete", self.bulk_delete, ["POST"]),
            (f"/{entity.plural}/bulk/restore", "restore_many", self.restore_many, ["POST"]),
        ]
        if entity.csv:
            rules.append((f"/{entity.plural}/export.csv", "export", self.export, ["GET"]))
        if entity.name in columns.BUILT_IN:
            rules.append((f"/{entity.plural}/columns", "columns", self.save_columns, ["POST"]))
        if bulk_tag_and_owner:
            rules.append((f"/{entity.plural}/bulk/tag", "bulk_tag", self.bulk_tag, ["POST"]))
            rules.append((f"/{entity.plural}/bulk/owner", "bulk_owner", self.bulk_owner, ["POST"]))
        for rule, endpoint, view, methods in rules:
            bp.add_url_rule(rule, endpoint, view, methods=methods)

    def service(self) -> Any:
        return acting(self.service_class)

    def _query(self) -> tuple[ListQuery, FilterBuilder]:
        return parse_filtered_list_query(self.service().filter_fields())

    def _count(self, n: int) -> str:
        return plural(n, self.entity.name, self.entity.plural)

    @property
    def list_url(self) -> str:
        return url_for(f"{self.bp.name}.index")

    def context(self, service: Any, query: ListQuery, builder: FilterBuilder) -> dict[str, Any]:
        """Everything the list page and its blocks show: the page of rows, the pickers' choices (one
        statement) and the builder's fields."""
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
        query, builder = self._query()
        return render_list_page(
            self.template, table_block=self.table_block, **self.context(self.service(), query, builder)
        )

    def export(self) -> ResponseReturnValue:
        service = self.service()
        query = parse_export_query(service.filter_fields())
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
        query, builder = self._query()
        if not wants_fragment():
            return see_other(query.url(self.list_url))
        response = render_page(self.template, block=self.table_block, **self.context(service, query, builder))
        return hx_trigger(response, self.changed_event) if self.changed_event else response

    def bulk_delete(self) -> ResponseReturnValue:
        """Bulk delete (the list's per-row delete is a bulk delete of one), with Undo."""
        service = self.service()
        deleted = service.delete_many(get_uuid_list("ids"))
        if not deleted:  # already deleted by someone else, or never ours to see: nothing to undo
            return with_toast(self.table(service), NOTHING_DELETED, "info")
        query, _ = self._query()
        return with_undo(
            self.table(service),
            f"Deleted {self._count(len(deleted))}.",
            undo_url=query.url(url_for(f"{self.bp.name}.restore_many")),
            ids=deleted,
            target=self.table_id,
        )

    def restore_many(self) -> ResponseReturnValue:
        service = self.service()
        restored = service.restore_many(get_uuid_list("ids"))
        return with_toast(self.table(service), f"Restored {self._count(len(restored))}.")

    def bulk_tag(self) -> ResponseReturnValue:
        tag_id = parse_uuid(request.form.get("tag_id"), "tag_id") or abort(400, "Choose a tag.")
        service = self.service()
        tagged = service.bulk_add_tag(get_uuid_list("ids"), tag_id=tag_id)
        return with_toast(self.table(service), f"Tagged {self._count(len(tagged))}.")

    def bulk_owner(self) -> ResponseReturnValue:
        owner_id = parse_uuid(request.form.get("owner_id"), "owner_id") or abort(400, "Choose an owner.")
        service = self.service()
        changed = service.bulk_change_owner(get_uuid_list("ids"), owner_id=owner_id)
        return with_toast(self.table(service), f"Reassigned {self._count(len(changed))}.")


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
        return self._save(self.service(), self.form_class())

    def edit(self, **ids: uuid.UUID) -> ResponseReturnValue:
        service = self.service()
        record = service.get_for_edit(ids[self.entity.id_arg])  # a form the user could not save is not offered
        return render_page(self.template, **self._context(service, self.form_class(obj=record), record))

    def update(self, **ids: uuid.UUID) -> ResponseReturnValue:
        service = self.service()
        return self._save(service, self.form_class(), service.get_for_edit(ids[self.entity.id_arg]))

    def _save(self, service: Any, form: Any, record: Any = None) -> ResponseReturnValue:
        context = self._context(service, form, record)
        status = 422
        if form.validate_on_submit():
            from crm_web.views.custom import custom_input

            custom = custom_input(self.entity.name)
            try:
                saved = (
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
                assert self.entity.detail_endpoint is not None
                values: dict[str, Any] = {self.entity.id_arg: saved.id}
                url = url_for(self.entity.detail_endpoint, **values)
                return hx_location(url) if wants_fragment() else see_other(url)
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

"""Custom field definitions: admins define them per entity in Settings, managers look, sales may not.

The definitions are data on the organisation's row (crm_web/custom_fields.py says why); a change
locks that row (PostgreSQL) so two admins' edits never overwrite each other. Deleting a field moves
it to the trash with its values (they stay in the records); restoring brings both back; purging
removes the definition and its values from every record. A type change converts the values, and
is refused, with the number of records, when some would not convert.

On PostgreSQL each live field has an index on its value (the expression `custom_fields.value_expression`
compiles to), and a text field also a trigram index on the lower-cased value the global search
matches; both partial to the organisation's live rows, created when the field is defined or
restored, replaced when its type changes, dropped when it goes to the trash. The app's role may
not own the tables: then the indexes are not created (logged), and `flask crm custom-field-indexes`,
run as the tables' owner, creates every missing one (ensure_indexes).
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from crm_web.custom_fields import (
    COLOURS,
    CUSTOM_ENTITIES,
    FIELD_TYPES,
    MAX_FIELDS,
    MAX_HELP,
    MAX_LABEL,
    MAX_OPTION_LABEL,
    MAX_OPTIONS,
    CustomField,
    FieldInput,
    Option,
    all_fields,
    convert,
    converts,
    index_expression,
    live_fields,
    new_id,
    new_key,
    search_index_expression,
)
from crm_web.errors import NotFound, ValidationError
from crm_web.models import Organization, Role, utcnow
from crm_web.permissions import require_role
from crm_web.services.base import ActorService
from crm_web.services.integrity import commit_or_refuse
from crm_web.services.sql import session_or_default

logger = logging.getLogger(__name__)


def org_schema(session: Session, org_id: uuid.UUID) -> dict[str, Any]:
    """The organisation's definitions: from the row the request already loaded (no statement), else one."""
    org = session.get(Organization, org_id)
    return dict(org.custom_fields or {}) if org is not None else {}


def entity_fields(session: Session, org_id: uuid.UUID, entity_name: str) -> list[CustomField]:
    """The entity's live fields, in form order."""
    if entity_name not in CUSTOM_ENTITIES:
        return []
    return live_fields(org_schema(session, org_id), entity_name)


def _model(entity_name: str) -> Any:
    from crm_web.entities import entity

    return entity(entity_name).model


def index_name(org_id: uuid.UUID, cf: CustomField) -> str:
    return f"cf_{org_id.hex[:12]}_{cf.id}"


def search_index_name(org_id: uuid.UUID, cf: CustomField) -> str:
    return f"{index_name(org_id, cf)}_trgm"


def statistics_name(org_id: uuid.UUID, cf: CustomField) -> str:
    return f"{index_name(org_id, cf)}_stats"


def _statistics_statement(org_id: uuid.UUID, table: str, cf: CustomField) -> str | None:
    """Statistics on the value's expression over the whole table, for a field with a btree index: the
    planner ignores a partial index's own statistics, so without them it guessed a condition on the
    field keeps 0.5% of the rows (and read every matching deal to fill a board column of 20)."""
    method, expression = index_expression(cf)
    if method != "btree":
        return None
    return f'CREATE STATISTICS IF NOT EXISTS "{statistics_name(org_id, cf)}" ON {expression} FROM {table}'


def _index_definitions(org_id: uuid.UUID, cf: CustomField) -> list[tuple[str, str, str]]:
    """(name, method, indexed expressions) of each of the field's indexes: the one on its value, and
    for a text type the trigram index the global search's conditions on it use. A btree index ends
    with the row's id, the lists' tiebreaker (BaseService.sort_clause): a sort by the field reads its
    page in order, read backwards for a descending one, instead of sorting every row that shares the
    first value (a select's commonest option, or the rows without a value)."""
    method, expression = index_expression(cf)
    found = [(index_name(org_id, cf), method, f"{expression}, id" if method == "btree" else expression)]
    searched = search_index_expression(cf)
    if searched is not None:
        found.append((search_index_name(org_id, cf), "gin", f"{searched} gin_trgm_ops"))
    return found


def create_index(session: Session, org_id: uuid.UUID, entity_name: str, cf: CustomField) -> bool:
    """The field's indexes and statistics on PostgreSQL (IF NOT EXISTS); False when the role may not
    create them."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    table = _model(entity_name).__table__.name
    created = True
    for name, method, expression in _index_definitions(org_id, cf):
        # Inlined: the org id is a UUID and the expression is built from a checked key, never user text.
        statement = (
            f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} USING {method} ({expression}) '
            f"WHERE org_id = '{org_id}' AND deleted_at IS NULL"
        )
        try:
            with session.begin_nested():
                session.execute(text(statement))
        except DBAPIError as error:
            logger.warning("Custom field index %s not created: %s", name, error.orig)
            created = False
    statistics = _statistics_statement(org_id, table, cf)
    if statistics is not None:
        try:  # filled by the table's next ANALYZE (autovacuum's, or migration 0034's)
            with session.begin_nested():
                session.execute(text(statistics))
        except DBAPIError as error:
            logger.warning("Custom field statistics %s not created: %s", statistics_name(org_id, cf), error.orig)
            created = False
    return created


def drop_index(session: Session, org_id: uuid.UUID, cf: CustomField) -> None:
    """The field's indexes, of any type it had, and its statistics (IF EXISTS)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for name in (index_name(org_id, cf), search_index_name(org_id, cf)):
        try:
            with session.begin_nested():
                session.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
        except DBAPIError as error:
            logger.warning("Custom field index %s not dropped: %s", name, error.orig)
    try:
        with session.begin_nested():
            session.execute(text(f'DROP STATISTICS IF EXISTS "{statistics_name(org_id, cf)}"'))
    except DBAPIError as error:
        logger.warning("Custom field statistics %s not dropped: %s", statistics_name(org_id, cf), error.orig)


def ensure_indexes(session: Session | None = None) -> tuple[int, int]:
    """Every organisation's live fields' indexes, created where missing (PostgreSQL; the command
    `crm custom-field-indexes`, run as the tables' owner): (fields checked, fields with an index that
    could not be created). Committed."""
    session = session_or_default(session)
    checked = failed = 0
    for org_id, schema in session.execute(
        select(Organization.id, Organization.custom_fields).order_by(Organization.id)
    ):
        for entity_name in CUSTOM_ENTITIES:
            for cf in live_fields(schema, entity_name):
                checked += 1
                if not create_index(session, org_id, entity_name, cf):
                    failed += 1
    session.commit()
    return checked, failed


class CustomFieldService(ActorService):
    # --- reading -----------------------------------------------------------------------------

    def fields(self, entity_name: str, *, trashed: bool = False) -> list[CustomField]:
        """The entity's fields (managers and admins): live ones, or those in the trash."""
        require_role(self.actor.role, Role.MANAGER, "see the custom fields")
        self._check_entity(entity_name)
        every = all_fields(org_schema(self.session, self.actor.org_id), entity_name)
        return [f for f in every if (f.deleted_at is not None) == trashed]

    def trashed(self) -> list[tuple[str, CustomField]]:
        """(entity name, field) of every field in the trash, the latest deleted first (the trash page;
        managers and admins): read from the organisation's row, no statement."""
        require_role(self.actor.role, Role.MANAGER, "see the custom fields")
        schema = org_schema(self.session, self.actor.org_id)
        found = [
            (entity_name, cf)
            for entity_name in CUSTOM_ENTITIES
            for cf in all_fields(schema, entity_name)
            if cf.deleted_at is not None
        ]
        return sorted(found, key=lambda item: item[1].deleted_at or "", reverse=True)

    def get(self, entity_name: str, field_id: str) -> CustomField:
        require_role(self.actor.role, Role.MANAGER, "see the custom fields")
        self._check_entity(entity_name)
        found = next(
            (f for f in all_fields(org_schema(self.session, self.actor.org_id), entity_name) if f.id == field_id),
            None,
        )
        if found is None:
            raise NotFound("That field does not exist.")
        return found

    # --- writing -----------------------------------------------------------------------------

    def create(self, entity_name: str, given: FieldInput) -> CustomField:
        org, every = self._locked(entity_name)
        live = [f for f in every if f.deleted_at is None]
        if len(live) >= MAX_FIELDS:
            raise ValidationError(
                f"An entity has at most {MAX_FIELDS} custom fields: delete one before adding another.",
                {"label": f"At most {MAX_FIELDS} fields."},
            )
        label, help_text, options = self._clean(given, None, every)
        if given.type not in FIELD_TYPES:
            raise ValidationError("Please correct the highlighted fields", {"type": "Choose a type."})
        position = given.position if given.position is not None else max((f.position for f in live), default=0) + 1
        cf = CustomField(
            id=new_id(),
            key=new_key(label, (f.key for f in every)),
            label=label,
            type=given.type,
            required=given.required,
            help=help_text,
            position=position,
            options=options,
        )
        self._store(org, entity_name, [*every, cf])
        create_index(self.session, self.actor.org_id, entity_name, cf)
        commit_or_refuse(self.session)
        return cf

    def update(self, entity_name: str, field_id: str, given: FieldInput) -> CustomField:
        """Rename, help, required, position, options (renamed in place: their ids stay) and type."""
        org, every = self._locked(entity_name)
        cf = self._find(every, field_id)
        label, help_text, options = self._clean(given, cf, every)
        changed = replace(
            cf,
            label=label,
            help=help_text,
            required=given.required,
            position=given.position if given.position is not None else cf.position,
            options=options,
        )
        new_type = given.type or cf.type
        if new_type not in FIELD_TYPES:
            raise ValidationError("Please correct the highlighted fields", {"type": "Choose a type."})
        if new_type != cf.type:
            changed = replace(changed, type=new_type)
            if not changed.has_options:
                changed = replace(changed, options=())
            self._convert_values(entity_name, cf, changed)
        self._store(org, entity_name, [changed if f.id == field_id else f for f in every])
        if new_type != cf.type:
            drop_index(self.session, self.actor.org_id, cf)
            create_index(self.session, self.actor.org_id, entity_name, changed)
        commit_or_refuse(self.session)
        return changed

    def delete(self, entity_name: str, field_id: str) -> CustomField:
        """To the trash: the definition is hidden everywhere, its values stay in the records."""
        org, every = self._locked(entity_name)
        cf = self._find(every, field_id)
        if cf.deleted_at is not None:
            return cf
        trashed = replace(cf, deleted_at=utcnow().isoformat())
        self._store(org, entity_name, [trashed if f.id == field_id else f for f in every])
        drop_index(self.session, self.actor.org_id, cf)
        commit_or_refuse(self.session)
        return trashed

    def restore(self, entity_name: str, field_id: str) -> CustomField:
        org, every = self._locked(entity_name)
        cf = self._find(every, field_id)
        if cf.deleted_at is None:
            return cf
        if sum(1 for f in every if f.deleted_at is None) >= MAX_FIELDS:
            raise ValidationError(f"An entity has at most {MAX_FIELDS} custom fields: delete one first.")
        restored = replace(cf, deleted_at=None)
        self._store(org, entity_name, [restored if f.id == field_id else f for f in every])
        create_index(self.session, self.actor.org_id, entity_name, restored)
        commit_or_refuse(self.session)
        return restored

    def purge(self, entity_name: str, field_id: str) -> CustomField:
        """Gone for good: the definition, and its value in every record of the organisation."""
        org, every = self._locked(entity_name)
        cf = self._find(every, field_id)
        if cf.deleted_at is None:
            raise ValidationError("Delete the field before purging it.")
        self._rewrite_values(entity_name, cf.key, lambda _: None)
        self._store(org, entity_name, [f for f in every if f.id != field_id])
        # Dropped with the move to the trash already; again in case the owner's command recreated them.
        drop_index(self.session, self.actor.org_id, cf)
        commit_or_refuse(self.session)
        return cf

    def purge_trashed_before(self, cutoff: datetime) -> int:
        """Retention (services/trash.purge_older_than): the fields in the trash since before `cutoff`
        are purged with their values, like the records; how many."""
        purged = 0
        for entity_name in CUSTOM_ENTITIES:
            every = all_fields(org_schema(self.session, self.actor.org_id), entity_name)
            for cf in every:
                if cf.deleted_at is not None and datetime.fromisoformat(cf.deleted_at) < cutoff:
                    self.purge(entity_name, cf.id)
                    purged += 1
        return purged

    # --- helpers -----------------------------------------------------------------------------

    def _check_entity(self, entity_name: str) -> None:
        if entity_name not in CUSTOM_ENTITIES:
            raise NotFound("Custom fields exist for contacts, companies, leads and deals.")

    def _locked(self, entity_name: str) -> tuple[Organization, list[CustomField]]:
        """The organisation's row, locked for the change (PostgreSQL), and the entity's fields."""
        require_role(self.actor.role, Role.ADMIN, "change the custom fields")
        self._check_entity(entity_name)
        stmt = select(Organization).where(Organization.id == self.actor.org_id)
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        org = self.session.scalars(stmt.execution_options(populate_existing=True)).one()
        return org, all_fields(org.custom_fields, entity_name)

    def _find(self, every: Iterable[CustomField], field_id: str) -> CustomField:
        found = next((f for f in every if f.id == field_id), None)
        if found is None:
            raise NotFound("That field does not exist.")
        return found

    def _store(self, org: Organization, entity_name: str, fields: list[CustomField]) -> None:
        schema = copy.deepcopy(dict(org.custom_fields or {}))
        schema[entity_name] = [f.to_json() for f in fields]
        org.custom_fields = schema  # a new value: the JSON column sees the change

    def _clean(
        self, given: FieldInput, current: CustomField | None, every: list[CustomField]
    ) -> tuple[str, str, tuple[Option, ...]]:
        errors: dict[str, str] = {}
        label = " ".join((given.label or "").split())
        if not label:
            errors["label"] = "Enter a label."
        elif len(label) > MAX_LABEL:
            errors["label"] = f"At most {MAX_LABEL} characters."
        elif any(f.label.lower() == label.lower() and f.deleted_at is None and f is not current for f in every) and (
            current is None or current.label.lower() != label.lower()
        ):
            errors["label"] = "Another field already has this label."
        help_text = (given.help or "").strip()
        if len(help_text) > MAX_HELP:
            errors["help"] = f"At most {MAX_HELP} characters."
        if given.position is not None and not 0 <= given.position <= 10000:
            errors["position"] = "Use a position from 0 to 10000."
        options: list[Option] = []
        kind = given.type or (current.type if current else "text")
        if kind in ("select", "multi_select"):
            known = {o.id: o for o in (current.options if current else ())}
            seen: set[str] = set()
            for option_id, option_label, colour in given.options:
                name = " ".join((option_label or "").split())
                if not name:
                    continue  # a blank row: dropped (its id's values show nothing)
                if len(name) > MAX_OPTION_LABEL:
                    errors["options"] = f"An option has at most {MAX_OPTION_LABEL} characters."
                    continue
                if name.lower() in seen:
                    errors["options"] = f"The option {name!r} is listed twice."
                    continue
                seen.add(name.lower())
                kept = option_id if option_id in known else new_id()
                options.append(Option(kept, name, colour if colour in COLOURS else "gray"))
            if not options:
                errors["options"] = "Add at least one option."
            elif len(options) > MAX_OPTIONS:
                errors["options"] = f"At most {MAX_OPTIONS} options."
        if errors:
            raise ValidationError("Please correct the highlighted fields", errors)
        return label, help_text, tuple(options)

    def _values(self, entity_name: str, key: str) -> list[tuple[uuid.UUID, dict[str, Any]]]:
        """(id, custom) of every record of the organisation holding a value for `key`, trashed ones too."""
        model = _model(entity_name)
        stmt = (
            select(model.id, model.custom)
            .where(model.org_id == self.actor.org_id, model.custom.is_not(None))
            .execution_options(include_deleted=True)
        )
        return [(row[0], row[1]) for row in self.session.execute(stmt) if row[1] and row[1].get(key) is not None]

    def _convert_values(self, entity_name: str, old: CustomField, new: CustomField) -> None:
        found = self._values(entity_name, old.key)
        users = self._user_ids() if new.type == "user" else None
        bad = sum(1 for _, values in found if not _converts(values[old.key], old, new, users))
        if bad:
            noun = "record" if bad == 1 else "records"
            raise ValidationError(
                f"The type cannot change: {bad} {noun} hold a value that is not a {new.type_label.lower()}.",
                {"type": f"{bad} {noun} would not convert. Change or clear their values first."},
            )
        self._rewrite_values(entity_name, old.key, lambda value: _convert(value, old, new), found=found)

    def _rewrite_values(
        self, entity_name: str, key: str, change: Any, *, found: list[tuple[uuid.UUID, dict[str, Any]]] | None = None
    ) -> None:
        """Each record's value of `key` through `change` (None removes it), without touching `updated_at`."""
        model = _model(entity_name)
        table = model.__table__
        for record_id, values in found if found is not None else self._values(entity_name, key):
            new_values = dict(values)
            new_value = change(values[key])
            if new_value is None:
                new_values.pop(key, None)
            else:
                new_values[key] = new_value
            self.session.execute(
                table.update()
                .where(table.c.id == record_id, table.c.org_id == self.actor.org_id)
                .values(custom=new_values or None)
            )

    def _user_ids(self) -> set[uuid.UUID]:
        from crm_web.models import User

        return set(self.session.scalars(select(User.id).where(User.org_id == self.actor.org_id)))


def _converts(value: Any, old: CustomField, new: CustomField, users: set[uuid.UUID] | None) -> bool:
    readable = _as_text(value, old)
    if new.type == "user":
        try:
            return uuid.UUID(str(value)) in (users or set())
        except ValueError:
            return False
    return converts(readable, new)


def _convert(value: Any, old: CustomField, new: CustomField) -> Any:
    return convert(_as_text(value, old), new)


def _as_text(value: Any, old: CustomField) -> Any:
    """A stored value in the words another type reads: option labels instead of ids."""
    if old.type == "select":
        option = old.option(value)
        return option.label if option else None
    if old.type == "multi_select":
        return [o.label for v in value if (o := old.option(v)) is not None]
    return value


def field_input(form: Mapping[str, Any], getlist: Any) -> FieldInput:
    """The settings form's posted definition."""
    position_text = str(form.get("position") or "").strip()
    position: int | None
    try:
        position = int(position_text) if position_text else None
    except ValueError:
        raise ValidationError("Please correct the highlighted fields", {"position": "Enter a whole number."}) from None
    ids, labels, colours = getlist("option_id"), getlist("option_label"), getlist("option_colour")
    options = [
        (ids[i] if i < len(ids) else "", labels[i], colours[i] if i < len(colours) else "gray")
        for i in range(min(len(labels), MAX_OPTIONS + 20))
    ]
    return FieldInput(
        label=str(form.get("label") or "")[: MAX_LABEL * 4],
        type=str(form.get("type") or ""),
        required=form.get("required") in ("on", "1", "true", "y"),
        help=str(form.get("help") or "")[: MAX_HELP * 4],
        position=position,
        options=options,
    )

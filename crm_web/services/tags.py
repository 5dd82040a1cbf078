"""Tags: created per organisation with a colour, attached to contacts, companies, leads and deals.

One generic service: the entity type comes from a whitelist (never from SQL text), and the
record must belong to the actor's organisation and be editable by the actor.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import delete, exists, insert, select

from crm_web.entities import ENTITIES, Entity
from crm_web.errors import NotFound, ValidationError
from crm_web.models import Tag
from crm_web.services.base import BaseService

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOR = "#6366f1"


def _taggable(entity_type: str) -> Entity:
    """The taggable entity of that name (a whitelist: the name never reaches SQL); else NotFound."""
    found = ENTITIES.get(entity_type)
    if found is None or found.tag_table is None:
        raise NotFound("Those records cannot be tagged.")
    return found


@dataclass
class TagState:
    """What a tag editor shows after a change: the record's tags and the org's tags."""

    entity_type: str
    entity_id: uuid.UUID
    tags: list[Tag]
    all_tags: list[Tag]


class TagService(BaseService[Tag]):
    """Tag names are unique per organisation; colours are #rrggbb."""

    model = Tag
    entity_type = "tag"
    WRITABLE_FIELDS: ClassVar[frozenset[str]] = frozenset({"name", "color"})
    SORT_FIELDS: ClassVar[dict[str, Any]] = {"name": Tag.name}
    DEFAULT_SORT = "name"

    def clean(self, values: dict[str, Any], obj: Tag | None = None) -> dict[str, Any]:
        """A name of 1-60 characters and a #rrggbb colour."""
        name = " ".join(str(values.get("name") or "").split())
        color = (values.get("color") or DEFAULT_COLOR).strip()
        errors = {}
        if not name:
            errors["name"] = "A tag needs a name."
        elif len(name) > 60:
            errors["name"] = "At most 60 characters."
        if not COLOR_RE.match(color):
            errors["color"] = "Use a colour like #6366f1."
        if errors:
            raise ValidationError("The tag is not valid", errors)
        return {"name": name, "color": color.lower()}

    def all(self) -> list[Tag]:
        return list(self.session.scalars(self.scoped().order_by(Tag.name)))

    def _record(self, entity_type: str, entity_id: uuid.UUID) -> tuple[Any, Any, str, Any]:
        kind = _taggable(entity_type)
        model, table, column = kind.model, kind.tag_table, kind.tag_column
        obj = self.session.scalars(
            select(model).where(model.org_id == self.org_id, model.id == entity_id)
        ).one_or_none()
        if obj is None:
            raise NotFound(f"That {entity_type} does not exist or was deleted.")
        self.check_can_modify(obj)
        return model, table, column, obj

    def state(self, entity_type: str, entity_id: uuid.UUID) -> TagState:
        """The editor of a live record of this organisation (another org's id is NotFound): three statements."""
        model = _taggable(entity_type).model
        live = exists().where(model.org_id == self.org_id, model.id == entity_id, model.deleted_at.is_(None))
        if not self.session.scalar(select(live)):
            raise NotFound(f"That {entity_type} does not exist or was deleted.")
        return self._state(entity_type, entity_id)

    def _state(self, entity_type: str, entity_id: uuid.UUID) -> TagState:
        """The record's tags and the organisation's tags (two statements)."""
        kind = _taggable(entity_type)
        table, column = kind.tag_table, kind.tag_column
        assert table is not None  # _taggable checked it
        tags = list(
            self.session.scalars(
                select(Tag)
                .join(table, table.c.tag_id == Tag.id)
                .where(Tag.org_id == self.org_id, table.c[column] == entity_id)
                .order_by(Tag.name)
            )
        )
        return TagState(entity_type, entity_id, tags, self.all())

    def assign(
        self,
        entity_type: str,
        entity_id: uuid.UUID,
        *,
        tag_id: uuid.UUID | None = None,
        name: str | None = None,
        color: str | None = None,
    ) -> TagState:
        """Attach an existing tag, or create one by name (reusing a tag of that name) and attach it."""
        _, table, column, obj = self._record(entity_type, entity_id)
        if tag_id is None:
            values = self.clean({"name": name, "color": color})
            tag = self.session.scalars(self.scoped().where(Tag.name == values["name"])).first()
            if tag is None:
                tag = Tag(org_id=self.org_id, **values)
                self.session.add(tag)
                self.session.flush()
            tag_id = tag.id
        elif not self.session.scalar(select(exists().where(Tag.id == tag_id, Tag.org_id == self.org_id))):
            raise NotFound("That tag does not exist.")
        linked = self.session.scalar(select(exists().where(table.c[column] == obj.id, table.c.tag_id == tag_id)))
        if not linked:
            self.session.execute(insert(table).values({column: obj.id, "tag_id": tag_id}))
            self.history_for(entity_type, obj, {"tags": ["", "+" + str(tag_id)]})
        self.commit()
        return self._state(entity_type, entity_id)

    def remove(self, entity_type: str, entity_id: uuid.UUID, *, tag_id: uuid.UUID) -> TagState:
        _, table, column, obj = self._record(entity_type, entity_id)
        self.session.execute(delete(table).where(table.c[column] == obj.id, table.c.tag_id == tag_id))
        self.history_for(entity_type, obj, {"tags": ["-" + str(tag_id), ""]})
        self.commit()
        return self._state(entity_type, entity_id)

    def history_for(self, entity_type: str, obj: Any, changes: dict[str, Any]) -> None:
        from crm_web.services.history import record_change

        record_change(self.session, self.actor, entity_type, obj, "updated", changes)

"""Tags: created per organisation with a colour, attached to contacts, companies, leads and deals.

One generic service: the entity type comes from a whitelist (never from SQL text), and the
record must belong to the actor's organisation and be editable by the actor.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Uuid, delete, exists, func, literal, select, union_all, update

from crm_web.entities import ENTITIES, Entity, taggable
from crm_web.errors import Conflict, NotFound, ValidationError
from crm_web.models import Role, Tag
from crm_web.permissions import require_role
from crm_web.services.base import BaseService
from crm_web.services.sql import insert_ignoring_duplicates
from crm_web.services.stats.cache import cached_stats

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOR = "#6366f1"


def _taggable(entity_type: str) -> Entity:
    """The taggable entity of that name (a whitelist: the name never reaches SQL); else NotFound."""
    found = ENTITIES.get(entity_type)
    if found is None or found.tag_table is None:
        raise NotFound("Those records cannot be tagged.")
    return found


def _tag_tables() -> list[Any]:
    return [kind.tag_table for kind in taggable() if kind.tag_table is not None]


@dataclass(frozen=True)
class TagUsage:
    """A tag of the settings page and how many records carry it."""

    tag: Tag
    uses: int


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
            tag_id = self._tag_named(values["name"], values["color"])
        elif not self.session.scalar(select(exists().where(Tag.id == tag_id, Tag.org_id == self.org_id))):
            raise NotFound("That tag does not exist.")
        # Two tabs (or a double click) assigning the same tag: the second insert is skipped, not a
        # unique-key error, and only the request that linked it writes the history.
        linked = self.session.scalars(
            insert_ignoring_duplicates(self.session, table)
            .values({column: obj.id, "tag_id": tag_id})
            .returning(table.c.tag_id)
        ).all()
        if linked:
            self.history_for(entity_type, obj, {"tags": ["", "+" + str(tag_id)]})
        self.commit()
        return self._state(entity_type, entity_id)

    def _tag_named(self, name: str, color: str) -> uuid.UUID:
        """The live tag of that name, created when there is none; a tag of that name created meanwhile by
        a concurrent request is reused (the insert is skipped, not a unique-key error)."""
        tag_id = self.session.scalar(self.scoped(select(Tag.id)).where(Tag.name == name))
        if tag_id is not None:
            return tag_id
        self._free_name(name)
        created = self.session.scalar(
            insert_ignoring_duplicates(self.session, Tag)
            .values(id=uuid.uuid4(), org_id=self.org_id, name=name, color=color)
            .returning(Tag.id)
        )
        if created is not None:
            return created
        found = self.session.scalar(self.scoped(select(Tag.id)).where(Tag.name == name))
        if found is None:  # taken by a tag deleted meanwhile: rare enough to ask for a retry
            raise Conflict("A tag with this name was just changed. Please try again.")
        return found

    def remove(self, entity_type: str, entity_id: uuid.UUID, *, tag_id: uuid.UUID) -> TagState:
        _, table, column, obj = self._record(entity_type, entity_id)
        self.session.execute(delete(table).where(table.c[column] == obj.id, table.c.tag_id == tag_id))
        self.history_for(entity_type, obj, {"tags": ["-" + str(tag_id), ""]})
        self.commit()
        return self._state(entity_type, entity_id)

    def history_for(self, entity_type: str, obj: Any, changes: dict[str, Any]) -> None:
        from crm_web.services.history import record_change

        record_change(self.session, self.actor, entity_type, obj, "updated", changes)

    # --- the settings page (managers and admins) ------------------------------------------

    def _require_manager(self, action: str) -> None:
        require_role(self.actor.role, Role.MANAGER, action)

    def usage_list(self) -> list[TagUsage]:
        """The organisation's tags with how many records carry each. Counting reads every link of the
        organisation (and, under row-level security, checks each link's record), so the counts are
        cached until a tag, a link or a record changes (services/cache_versions.py)."""
        self._require_manager("manage tags")
        tags = self.session.scalars(self.scoped(select(Tag)).order_by(func.lower(Tag.name), Tag.id)).all()
        uses = cached_stats(self.org_id, "tags", "uses", self._count_uses)
        return [TagUsage(tag, uses.get(str(tag.id), 0)) for tag in tags]

    def _count_uses(self) -> dict[str, int]:
        """{tag id: records carrying it}: one grouped count per link table, in one statement."""
        per_table = union_all(
            *(
                select(table.c.tag_id, func.count().label("uses"))
                .join(Tag, Tag.id == table.c.tag_id)
                .where(Tag.org_id == self.org_id)
                .group_by(table.c.tag_id)
                for table in _tag_tables()
            )
        ).subquery()
        rows = self.session.execute(select(per_table.c.tag_id, func.sum(per_table.c.uses)).group_by(per_table.c.tag_id))
        return {str(tag_id): int(uses) for tag_id, uses in rows}

    def _free_name(self, name: str, keep: uuid.UUID | None = None) -> None:
        """A deleted tag gives its name up to a new or renamed one (and can no longer be restored)."""
        self.session.execute(
            delete(Tag)
            .where(Tag.org_id == self.org_id, Tag.name == name, Tag.deleted_at.is_not(None), Tag.id != keep)
            .execution_options(synchronize_session=False)
        )

    def rename(self, tag_id: uuid.UUID, *, name: str, color: str) -> Tag:
        """A new name (unique in the organisation) and colour."""
        self._require_manager("change tags")
        values = self.clean({"name": name, "color": color})
        self._free_name(values["name"], keep=tag_id)
        return self.update(tag_id, **values)

    def merge(self, tag_id: uuid.UUID, *, into_id: uuid.UUID) -> tuple[str, Tag]:
        """Every record tagged with the first tag gets the second; the first is then deleted for good
        (one INSERT ... SELECT per taggable type, then one DELETE)."""
        self._require_manager("merge tags")
        source, into = self.get(tag_id), self.get(into_id)
        if source.id == into.id:
            raise ValidationError("Choose another tag to merge into.", {"into": "Choose another tag."})
        for kind in taggable():
            table, column = kind.tag_table, kind.tag_column
            assert table is not None  # taggable() lists only entities with a link table
            link = table.c[column]
            already = select(link).where(table.c.tag_id == into.id)
            self.session.execute(
                insert_ignoring_duplicates(self.session, table).from_select(
                    [column, "tag_id"],
                    select(link, literal(into.id, Uuid())).where(table.c.tag_id == source.id, link.not_in(already)),
                )
            )
        self.history(into, "updated", {"merged": [source.name, into.name]})
        self.history(source, "purged", {"merged_into": ["", into.name]})
        self.session.execute(delete(Tag).where(Tag.org_id == self.org_id, Tag.id == source.id))
        self.commit()
        return source.name, into

    def delete(self, entity_id: uuid.UUID, *, hard: bool = False) -> Tag:
        """Soft: the tag leaves every record and picker, and Undo brings it back with its links."""
        self._require_manager("delete tags")
        return super().delete(entity_id, hard=hard)

    def restore(self, entity_id: uuid.UUID) -> Tag:
        """Undo of a tag's delete (managers and admins; tags are not in the trash): only a tag still deleted
        is restored, and only then is it in the history."""
        self._require_manager("restore tags")
        restored = self.session.scalar(
            update(Tag)
            .where(Tag.org_id == self.org_id, Tag.id == entity_id, Tag.deleted_at.is_not(None))
            .values(deleted_at=None, deleted_by_id=None)
            .returning(Tag.id)
            .execution_options(synchronize_session=False)
        )
        if restored is None:
            raise NotFound("That tag is not deleted (or no longer exists).")
        tag = self.get(entity_id, query=self.scoped().execution_options(populate_existing=True))
        self.history(tag, "restored")
        self.commit()
        return tag


def purge_trashed_tags(
    *, days: int | None, default_days: int, org_slug: str | None = None, dry_run: bool = False
) -> int:
    """Retention for deleted tags, like the trash's (`crm purge-trash`): one DELETE per organisation."""
    from datetime import timedelta

    from crm_web.extensions import db
    from crm_web.models import Organization, utcnow
    from crm_web.services.organisations import retention_days

    stmt = select(Organization)
    if org_slug:
        stmt = stmt.where(Organization.slug == org_slug)
    total = 0
    for org in db.session.scalars(stmt):
        cutoff = utcnow() - timedelta(days=retention_days(org, default_days) if days is None else days)
        expired = (Tag.org_id == org.id, Tag.deleted_at.is_not(None), Tag.deleted_at < cutoff)
        if dry_run:
            total += (
                db.session.scalar(
                    select(func.count()).select_from(Tag).where(*expired).execution_options(include_deleted=True)
                )
                or 0
            )
        else:
            total += len(db.session.scalars(delete(Tag).where(*expired).returning(Tag.id)).all())
    if not dry_run:
        db.session.commit()
    return total

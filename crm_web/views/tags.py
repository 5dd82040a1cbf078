"""Tags: assign/remove on any taggable record (type from a whitelist), create inline with a colour."""

from __future__ import annotations

import uuid

from flask import Blueprint, get_template_attribute, request

from crm_web.errors import BadRequest
from crm_web.params import parse_uuid
from crm_web.services.tags import TagService, TagState
from crm_web.views.generic import acting

bp = Blueprint("tags", __name__)


def _editor(state: TagState):
    macro = get_template_attribute("components/tag_editor.html", "tag_editor")
    return macro(state.entity_type, state.entity_id, state.tags, state.all_tags)


@bp.get("/tags/<entity_type>/<uuid:entity_id>")
def editor(entity_type: str, entity_id: uuid.UUID):
    return _editor(acting(TagService).state(entity_type, entity_id))


@bp.post("/tags/<entity_type>/<uuid:entity_id>/assign")
def assign(entity_type: str, entity_id: uuid.UUID):
    state = acting(TagService).assign(
        entity_type,
        entity_id,
        tag_id=parse_uuid(request.form.get("tag_id"), "tag_id"),
        name=request.form.get("name", "")[:200],
        color=request.form.get("color", "")[:20],
    )
    return _editor(state)


@bp.post("/tags/<entity_type>/<uuid:entity_id>/remove")
def remove(entity_type: str, entity_id: uuid.UUID):
    tag_id = parse_uuid(request.form.get("tag_id"), "tag_id")
    if tag_id is None:
        raise BadRequest("Which tag?")
    return _editor(acting(TagService).remove(entity_type, entity_id, tag_id=tag_id))

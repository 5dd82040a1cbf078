"""Custom field values from forms, and their inline edit on detail pages (crm_web/custom_fields.py)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, make_response, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from crm_web.custom_fields import CUSTOM_ENTITIES, live_fields
from crm_web.entities import Entity
from crm_web.errors import NotFound, ValidationError
from crm_web.rendering import with_toast
from crm_web.views.generic import acting


def custom_input(entity_name: str) -> dict[str, Any] | None:
    """The custom values an entity form posted ({key: text, or a list for a multi select}); None when
    the form had no custom fields part (nothing changes)."""
    if entity_name not in CUSTOM_ENTITIES or request.form.get("custom_form") != "1":
        return None
    raw: dict[str, Any] = {}
    for cf in live_fields(current_user.org.custom_fields, entity_name):
        if cf.type == "multi_select":
            raw[cf.key] = request.form.getlist(cf.name)[:60]
        elif cf.type == "checkbox":
            raw[cf.key] = cf.name in request.form
        else:
            raw[cf.key] = request.form.get(cf.name, "")[:6000]
    return raw


class CustomValueViews:
    """POST /<plural>/<id>/custom/<key>: one value edited in place on the detail page; the value's
    <dd> comes back (with the error and the typed value when refused, 422)."""

    def __init__(self, bp: Blueprint, entity: Entity, service_class: Any):
        self.entity = entity
        self.service_class = service_class
        bp.add_url_rule(
            f"/{entity.plural}/<uuid:{entity.id_arg}>/custom/<key>", "custom_value", self.save, methods=["POST"]
        )

    def save(self, key: str, **ids: uuid.UUID) -> ResponseReturnValue:
        service = acting(self.service_class)
        cf = next((f for f in service.custom_fields() if f.key == key[:40]), None)
        if cf is None:
            raise NotFound("That field does not exist.")
        raw: Any
        if cf.type == "multi_select":
            raw = request.form.getlist(cf.name)[:60]
        elif cf.type == "checkbox":
            raw = cf.name in request.form
        else:
            raw = request.form.get(cf.name, "")[:6000]
        record_id = ids[self.entity.id_arg]
        error = None
        status = 200
        try:
            record = service.update_custom(record_id, cf.key, raw)
        except ValidationError as refused:
            error = refused.field_errors.get(cf.name) or refused.message
            record = service.get_for_edit(record_id)
            status = 422
        from crm_web.templating import custom_users

        body = render_template(
            "components/custom_value.html",
            entity=self.entity,
            record=record,
            cf=cf,
            users=custom_users([cf]),
            error=error,
            posted=raw,
        )
        response = make_response(body, status)
        return response if error else with_toast(response, f"{cf.label} saved.")

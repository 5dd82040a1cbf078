"""Deals: list (filter builder, sort, pages, CSV), detail, forms, won/lost, undo (the board: views/board.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, flash, redirect, url_for
from flask_login import current_user

from crm_web.entities import DEAL
from crm_web.errors import BadRequest, Conflict, ValidationError
from crm_web.forms import apply_conflict, apply_errors
from crm_web.forms.deals import DealForm, LostForm
from crm_web.htmx import hx_location, hx_trigger, wants_fragment
from crm_web.params import get_uuid_param
from crm_web.rendering import render_page, see_other, with_toast, with_undo
from crm_web.services.deals import DealService
from crm_web.views.custom import CustomValueViews, custom_input
from crm_web.views.filtering import builder_fields, owner_choices_of
from crm_web.views.generic import ListViews, acting
from crm_web.views.pickers import fit_owner_field, picked_labels

bp = Blueprint("deals", __name__)

CHANGED = "deals-changed"  # dashboard panels (and anything else showing deals) refresh on it


def fields_meta(service: DealService) -> list[dict[str, Any]]:
    choices = service.choices()
    return builder_fields(service.filter_fields(), tags=choices.tags, choices=owner_choices_of(service, choices.owners))


ListViews(
    bp,
    DEAL,
    DealService,
    changed_event=CHANGED,
    extra_context=lambda service: {"pipelines": {p.id: p for p in service.pipelines.pipeline_list()}},
)


CustomValueViews(bp, DEAL, DealService)


# --- detail and forms ------------------------------------------------------------------------


@bp.get("/deals/<uuid:deal_id>")
def detail(deal_id: uuid.UUID):
    return render_page("deals/detail.html", detail=acting(DealService).detail(deal_id), lost_form=LostForm())


def _set_choices(form: DealForm, service: DealService) -> None:
    choices = service.form_choices()
    form.set_choices(replace(choices, owners=fit_owner_field(service.actor, form.owner_id, choices.owners)))


def _form_page(
    form: DealForm, service: DealService, deal_id: uuid.UUID | None, *, status: int = 200, deal: Any = None
) -> Response:
    _set_choices(form, service)
    picked = picked_labels(
        service.actor,
        {"company_id": ("company", form.company_id.data), "contact_id": ("contact", form.contact_id.data)},
    )
    return render_page(
        "deals/form.html", block="deal_form", form=form, deal_id=deal_id, deal=deal, picked=picked, status=status
    )


def _saved(deal_id: uuid.UUID, message: str) -> Response:
    flash(message, "info")
    url = url_for("deals.detail", deal_id=deal_id)
    return hx_trigger(hx_location(url), CHANGED) if wants_fragment() else see_other(url)


@bp.get("/deals/new")
def new():
    service = acting(DealService)
    form = DealForm(data={"owner_id": current_user.id, "currency": current_user.org.default_currency})
    choices = service.form_choices()
    pipeline_id = get_uuid_param("pipeline")
    pipeline = next((p for p in choices.pipelines if p.id == pipeline_id), None) or next(
        (p for p in choices.pipelines if p.is_default), choices.pipelines[0] if choices.pipelines else None
    )
    if pipeline and pipeline.stages:
        form.stage_id.data = pipeline.stages[0].id
    return _form_page(form, service, None)


@bp.post("/deals")
def create():
    service = acting(DealService)
    form = DealForm()
    _set_choices(form, service)
    if form.validate_on_submit():
        try:
            deal = service.create(stage_id=form.stage_id.data, custom_input=custom_input("deal"), **form.values())
            return _saved(deal.id, "Deal created.")
        except ValidationError as error:
            apply_errors(form, error)
    return _form_page(form, service, None, status=422)


@bp.get("/deals/<uuid:deal_id>/edit")
def edit(deal_id: uuid.UUID):
    service = acting(DealService)
    deal = service.get_for_edit(deal_id)  # a form the user could not save is not offered
    form = DealForm(obj=deal)
    return _form_page(form, service, deal_id, deal=deal)


@bp.post("/deals/<uuid:deal_id>")
def update(deal_id: uuid.UUID):
    service = acting(DealService)
    form = DealForm()
    _set_choices(form, service)
    status = 422
    if form.validate_on_submit():
        try:
            service.update(
                deal_id,
                stage_id=form.stage_id.data,
                expected_version=form.expected_version,
                custom_input=custom_input("deal"),
                **form.values(),
            )
            return _saved(deal_id, "Deal saved.")
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as error:  # a stale form: shown again with the typed values and who changed it
            apply_conflict(form, error)
            status = 409
    return _form_page(form, service, deal_id, status=status)


@bp.get("/deals/<uuid:deal_id>/history")
def history(deal_id: uuid.UUID):
    """The history card alone: it refreshes itself after every change of the deal."""
    detail = acting(DealService).summary(deal_id)  # another organisation's or a trashed deal: 404
    if not wants_fragment():
        return see_other(url_for("deals.detail", deal_id=deal_id))
    return render_page("deals/detail.html", block="deal_history", detail=detail)


@bp.post("/deals/<uuid:deal_id>/won")
def mark_won(deal_id: uuid.UUID):
    deal = acting(DealService).mark_won(deal_id)
    return _detail_changed(deal.id, f"{deal.name} is won.")


@bp.post("/deals/<uuid:deal_id>/lost")
def mark_lost(deal_id: uuid.UUID):
    form = LostForm()
    if not form.validate_on_submit():
        raise BadRequest("The lost reason is too long (at most 255 characters).")
    deal = acting(DealService).mark_lost(deal_id, lost_reason=(form.lost_reason.data or "").strip() or None)
    return _detail_changed(deal.id, f"{deal.name} is lost.")


@bp.post("/deals/<uuid:deal_id>/reopen")
def reopen(deal_id: uuid.UUID):
    deal = acting(DealService).reopen(deal_id)
    return _detail_changed(deal.id, f"{deal.name} is open again.")


def _detail_changed(deal_id: uuid.UUID, message: str) -> Response:
    if not wants_fragment():
        return see_other(url_for("deals.detail", deal_id=deal_id))
    response = render_page(
        "deals/detail.html", block="deal_summary", detail=acting(DealService).summary(deal_id), lost_form=LostForm()
    )
    return hx_trigger(with_toast(response, message), CHANGED)


@bp.post("/deals/<uuid:deal_id>/delete")
def delete(deal_id: uuid.UUID):
    deal = acting(DealService).delete(deal_id)
    message = f"{deal.name} moved to the trash."
    if not wants_fragment():
        flash(message, "info")
        return redirect(url_for("deals.index"), 303)
    response = render_page("deals/detail.html", block="deal_page", detail=None, deleted=deal)
    return hx_trigger(
        with_undo(response, message, undo_url=url_for("deals.restore", deal_id=deal_id), target="#deal-page"), CHANGED
    )


@bp.post("/deals/<uuid:deal_id>/restore")
def restore(deal_id: uuid.UUID):
    service = acting(DealService)
    deal = service.restore(deal_id)
    if not wants_fragment():
        return redirect(url_for("deals.detail", deal_id=deal_id), 303)
    response = render_page("deals/detail.html", block="deal_page", detail=service.detail(deal_id), lost_form=LostForm())
    return hx_trigger(with_toast(response, f"{deal.name} restored."), CHANGED)

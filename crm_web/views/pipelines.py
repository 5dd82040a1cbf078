"""Pipeline settings (managers and admins): pipelines, stages, order, default, deletes that move deals."""

from __future__ import annotations

import uuid

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from crm_web.errors import ValidationError
from crm_web.forms import apply_errors
from crm_web.forms.pipelines import MoveDealsForm, PipelineForm, StageForm
from crm_web.htmx import wants_fragment
from crm_web.params import get_uuid_list
from crm_web.rendering import render_page, with_toast
from crm_web.services.base import Actor
from crm_web.services.pipelines import PipelineService

bp = Blueprint("pipelines", __name__)


def _service() -> PipelineService:
    return PipelineService(Actor.of(current_user))


def _list_or_redirect(service: PipelineService, message: str):
    """After an htmx change: the pipeline list block plus a toast; otherwise back to the page."""
    if not wants_fragment():
        return redirect(url_for("pipelines.index"), 303)
    return with_toast(render_page("pipelines/index.html", block="pipeline_list", settings=service.settings()), message)


@bp.get("/pipelines")
def index():
    return render_page("pipelines/index.html", block="pipeline_list", settings=_service().settings())


@bp.route("/pipelines/new", methods=["GET", "POST"], endpoint="new")
def new():
    service = _service()
    service.check_can_manage()
    form = PipelineForm(data={"currency": current_user.org.default_currency})
    if form.validate_on_submit():
        try:
            service.pipeline_create(name=form.name.data, currency=form.currency.data, is_default=form.is_default.data)
            return redirect(url_for("pipelines.index"), 303)
        except ValidationError as error:
            apply_errors(form, error)
    return render_page("pipelines/pipeline_form.html", form=form, pipeline=None, status=422 if form.errors else 200)


@bp.route("/pipelines/<uuid:pipeline_id>/edit", methods=["GET", "POST"], endpoint="edit")
def edit(pipeline_id: uuid.UUID):
    service = _service()
    pipeline = service.settings_pipeline(pipeline_id)
    form = PipelineForm(data={"name": pipeline.name, "currency": pipeline.currency, "is_default": pipeline.is_default})
    if form.validate_on_submit():
        try:
            service.pipeline_update(pipeline_id, name=form.name.data, currency=form.currency.data)
            if form.is_default.data and not pipeline.is_default:
                service.pipeline_set_default(pipeline_id)
            return redirect(url_for("pipelines.index"), 303)
        except ValidationError as error:
            apply_errors(form, error)
    return render_page("pipelines/pipeline_form.html", form=form, pipeline=pipeline, status=422 if form.errors else 200)


@bp.post("/pipelines/<uuid:pipeline_id>/default")
def set_default(pipeline_id: uuid.UUID):
    service = _service()
    pipeline = service.pipeline_set_default(pipeline_id)
    return _list_or_redirect(service, f"{pipeline.name} is now the default pipeline.")


@bp.post("/pipelines/<uuid:pipeline_id>/stages/reorder")
def reorder(pipeline_id: uuid.UUID):
    service = _service()
    service.stage_reorder(pipeline_id, get_uuid_list("stage_id"))
    return _list_or_redirect(service, "Stage order saved.")


@bp.route("/pipelines/<uuid:pipeline_id>/delete", methods=["GET", "POST"], endpoint="delete")
def delete(pipeline_id: uuid.UUID):
    service = _service()
    pipeline = service.settings_pipeline(pipeline_id)
    form = MoveDealsForm()
    form.move_to_stage_id.choices = [("", "—")] + [
        (str(s.id), f"{p.name} › {s.name}") for p in service.pipeline_list() if p.id != pipeline_id for s in p.stages
    ]
    if form.validate_on_submit():
        try:
            service.pipeline_delete(pipeline_id, move_to_stage_id=form.move_to_stage_id.data)
            return redirect(url_for("pipelines.index"), 303)
        except ValidationError as error:
            apply_errors(form, error)
    deals = service.settings().pipeline_deals(pipeline)
    return render_page(
        "pipelines/delete.html",
        form=form,
        pipeline=pipeline,
        stage=None,
        deals=deals,
        status=422 if form.errors else 200,
    )


@bp.route("/pipelines/<uuid:pipeline_id>/stages/new", methods=["GET", "POST"], endpoint="new_stage")
def new_stage(pipeline_id: uuid.UUID):
    service = _service()
    pipeline = service.settings_pipeline(pipeline_id)
    form = StageForm()
    if form.validate_on_submit():
        try:
            service.stage_create(
                pipeline_id,
                name=form.name.data,
                probability=form.probability.data,
                is_won=form.is_won.data,
                is_lost=form.is_lost.data,
            )
            return redirect(url_for("pipelines.index"), 303)
        except ValidationError as error:
            apply_errors(form, error)
    return render_page(
        "pipelines/stage_form.html", form=form, pipeline=pipeline, stage=None, status=422 if form.errors else 200
    )


@bp.route("/pipelines/stages/<uuid:stage_id>/edit", methods=["GET", "POST"], endpoint="edit_stage")
def edit_stage(stage_id: uuid.UUID):
    service = _service()
    pipeline, stage = service.settings_stage(stage_id)
    form = StageForm(
        data={"name": stage.name, "probability": stage.probability, "is_won": stage.is_won, "is_lost": stage.is_lost}
    )
    if form.validate_on_submit():
        try:
            service.stage_update(
                stage_id,
                name=form.name.data,
                probability=form.probability.data,
                is_won=form.is_won.data,
                is_lost=form.is_lost.data,
            )
            return redirect(url_for("pipelines.index"), 303)
        except ValidationError as error:
            apply_errors(form, error)
    return render_page(
        "pipelines/stage_form.html", form=form, pipeline=pipeline, stage=stage, status=422 if form.errors else 200
    )


@bp.route("/pipelines/stages/<uuid:stage_id>/delete", methods=["GET", "POST"], endpoint="delete_stage")
def delete_stage(stage_id: uuid.UUID):
    service = _service()
    pipeline, stage = service.settings_stage(stage_id)
    form = MoveDealsForm()
    form.move_to_stage_id.choices = [("", "—")] + [(str(s.id), s.name) for s in pipeline.stages if s.id != stage_id]
    if form.validate_on_submit():
        try:
            service.stage_delete(stage_id, move_to_stage_id=form.move_to_stage_id.data)
            return redirect(url_for("pipelines.index"), 303)
        except ValidationError as error:
            apply_errors(form, error)
    deals = service.settings().count(stage_id).deals
    return render_page(
        "pipelines/delete.html",
        form=form,
        pipeline=pipeline,
        stage=stage,
        deals=deals,
        status=422 if form.errors else 200,
    )

"""Pipeline settings (managers and admins): pipelines, stages, order, default, deletes that move deals."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from crm_web.errors import ValidationError
from crm_web.forms import apply_errors, submit
from crm_web.forms.pipelines import MoveDealsForm, PipelineForm, StageForm
from crm_web.htmx import wants_fragment
from crm_web.params import get_uuid_list
from crm_web.rendering import render_page, with_toast
from crm_web.services.pipelines import PipelineService
from crm_web.views.generic import acting

bp = Blueprint("pipelines", __name__)


def _list_or_redirect(service: PipelineService, message: str):
    """After an htmx change: the pipeline list block plus a toast; otherwise back to the page."""
    if not wants_fragment():
        return redirect(url_for("pipelines.index"), 303)
    return with_toast(render_page("pipelines/index.html", block="pipeline_list", settings=service.settings()), message)


@bp.get("/pipelines")
def index():
    return render_page("pipelines/index.html", block="pipeline_list", settings=acting(PipelineService).settings())


@bp.route("/pipelines/new", methods=["GET", "POST"], endpoint="new")
def new():
    service = acting(PipelineService)
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
    service = acting(PipelineService)
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
    service = acting(PipelineService)
    pipeline = service.pipeline_set_default(pipeline_id)
    return _list_or_redirect(service, f"{pipeline.name} is now the default pipeline.")


@bp.post("/pipelines/<uuid:pipeline_id>/stages/reorder")
def reorder(pipeline_id: uuid.UUID):
    service = acting(PipelineService)
    service.stage_reorder(pipeline_id, get_uuid_list("stage_id"))
    return _list_or_redirect(service, "Stage order saved.")


def _delete_form(form: MoveDealsForm, pipeline: Any, stage: Any, deals: Callable[[], int], delete: Callable[..., Any]):
    """The delete page of a pipeline or stage: on a valid POST `delete` gets where its deals move to."""

    def deleted() -> bool:
        delete(move_to_stage_id=form.move_to_stage_id.data)
        return True

    if submit(form, deleted):
        return redirect(url_for("pipelines.index"), 303)
    return render_page(
        "pipelines/delete.html",
        form=form,
        pipeline=pipeline,
        stage=stage,
        deals=deals(),
        status=422 if form.errors else 200,
    )


@bp.route("/pipelines/<uuid:pipeline_id>/delete", methods=["GET", "POST"], endpoint="delete")
def delete(pipeline_id: uuid.UUID):
    service = acting(PipelineService)
    pipeline = service.settings_pipeline(pipeline_id)
    form = MoveDealsForm()
    form.move_to_stage_id.choices = [("", "—")] + [
        (str(s.id), f"{p.name} › {s.name}") for p in service.pipeline_list() if p.id != pipeline_id for s in p.stages
    ]
    return _delete_form(
        form,
        pipeline,
        None,
        lambda: service.settings().pipeline_deals(pipeline),
        functools.partial(service.pipeline_delete, pipeline_id),
    )


def _stage_form(form: StageForm, pipeline: Any, stage: Any, save: Callable[..., Any]):
    """The stage form (new or edit): on a valid POST `save` gets the form's values, then back to the list."""
    values = {"name": form.name.data, "probability": form.probability.data, "rotting_days": form.rotting_days.data}
    if submit(form, lambda: save(**values, is_won=form.is_won.data, is_lost=form.is_lost.data)) is not None:
        return redirect(url_for("pipelines.index"), 303)
    return render_page(
        "pipelines/stage_form.html", form=form, pipeline=pipeline, stage=stage, status=422 if form.errors else 200
    )


@bp.route("/pipelines/<uuid:pipeline_id>/stages/new", methods=["GET", "POST"], endpoint="new_stage")
def new_stage(pipeline_id: uuid.UUID):
    service = acting(PipelineService)
    pipeline = service.settings_pipeline(pipeline_id)
    return _stage_form(StageForm(), pipeline, None, functools.partial(service.stage_create, pipeline_id))


@bp.route("/pipelines/stages/<uuid:stage_id>/edit", methods=["GET", "POST"], endpoint="edit_stage")
def edit_stage(stage_id: uuid.UUID):
    service = acting(PipelineService)
    pipeline, stage = service.settings_stage(stage_id)
    form = StageForm(
        data={
            "name": stage.name,
            "probability": stage.probability,
            "is_won": stage.is_won,
            "is_lost": stage.is_lost,
            "rotting_days": stage.rotting_days,
        }
    )
    return _stage_form(form, pipeline, stage, functools.partial(service.stage_update, stage_id))


@bp.route("/pipelines/stages/<uuid:stage_id>/delete", methods=["GET", "POST"], endpoint="delete_stage")
def delete_stage(stage_id: uuid.UUID):
    service = acting(PipelineService)
    pipeline, stage = service.settings_stage(stage_id)
    form = MoveDealsForm()
    form.move_to_stage_id.choices = [("", "—")] + [(str(s.id), s.name) for s in pipeline.stages if s.id != stage_id]
    return _delete_form(
        form,
        pipeline,
        stage,
        lambda: service.settings().count(stage_id).deals,
        functools.partial(service.stage_delete, stage_id),
    )

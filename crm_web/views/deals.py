"""Deals: list (filter builder, sort, pages, CSV), kanban board and moves, detail, forms, won/lost, undo."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_login import current_user

from crm_web.csv_export import csv_response
from crm_web.errors import BadRequest, Conflict, ValidationError
from crm_web.filters.fields import DEAL_FILTERS
from crm_web.forms import apply_conflict, apply_errors
from crm_web.forms.deals import DealForm, LostForm
from crm_web.htmx import hx_location, hx_push_url, hx_trigger, wants_fragment
from crm_web.params import get_int_param, get_uuid_list, get_uuid_param, is_whole_number, parse_uuid
from crm_web.rendering import plural, render_fragments, render_page, with_toast, with_undo
from crm_web.services.base import Actor
from crm_web.services.deals import DealService
from crm_web.views.filtering import (
    FilterBuilder,
    builder_fields,
    parse_export_query,
    parse_filtered_list_query,
    render_list_page,
)
from crm_web.views.listing import ListQuery

bp = Blueprint("deals", __name__)

TABLE = "#deal-table"
BOARD = "#board"
CHANGED = "deals-changed"  # dashboard panels (and anything else showing deals) refresh on it


def _service() -> DealService:
    return DealService(Actor.of(current_user))


def _fields_meta(service: DealService) -> list[dict[str, Any]]:
    choices = service.choices()
    return builder_fields(DEAL_FILTERS, tags=choices.tags, choices={"owner": choices.owners})


# --- list ------------------------------------------------------------------------------------


def list_context(service: DealService, query: ListQuery, builder: FilterBuilder) -> dict[str, Any]:
    """The list page and its table block: count, rows with relations, tags, filter choices."""
    page = service.deal_list(
        filter_spec=query.filter_spec,
        q=query.q,
        scope=query.scope,
        sort=query.sort,
        page=query.page,
        per_page=query.per_page,
    )
    return {
        "page": page,
        "query": query,
        "builder": builder,
        "fields_meta": _fields_meta(service),
        "list_url": url_for("deals.index"),
        "pipelines": {p.id: p for p in service.pipelines.pipeline_list()},
    }


@bp.get("/deals")
def index():
    query, builder = parse_filtered_list_query(DEAL_FILTERS)
    return render_list_page("deals/index.html", table_block="deal_table", **list_context(_service(), query, builder))


@bp.get("/deals/export.csv")
def export():
    query = parse_export_query(DEAL_FILTERS)
    rows = _service().deal_export(filter_spec=query.filter_spec, q=query.q, scope=query.scope, sort=query.sort)
    header = next(rows)
    return csv_response("deals", header, rows)


def _table(service: DealService, query: ListQuery, builder: FilterBuilder) -> Any:
    """After a POST from the list: the table block with the list state of the query string."""
    if not wants_fragment():
        return redirect(query.url(url_for("deals.index")), 303)
    return hx_trigger(
        render_page("deals/index.html", block="deal_table", **list_context(service, query, builder)), CHANGED
    )


# --- bulk delete (the list's per-row delete is a bulk delete of one) ---------------------------


@bp.post("/deals/bulk/delete")
def bulk_delete():
    query, builder = parse_filtered_list_query(DEAL_FILTERS)
    service = _service()
    deleted = service.delete_many(get_uuid_list("ids"))
    return with_undo(
        _table(service, query, builder),
        f"Deleted {plural(len(deleted), 'deal')}.",
        undo_url=query.url(url_for("deals.restore_many")),
        ids=deleted,
        target=TABLE,
    )


@bp.post("/deals/bulk/restore")
def restore_many():
    query, builder = parse_filtered_list_query(DEAL_FILTERS)
    service = _service()
    restored = service.restore_many(get_uuid_list("ids"))
    return with_toast(_table(service, query, builder), f"Restored {plural(len(restored), 'deal')}.")


# --- board -----------------------------------------------------------------------------------


def _board_query(pipeline_id: uuid.UUID | None, query: ListQuery) -> str:
    """The board's URL state (pipeline, search, filter) for links, load-more and moves."""
    pairs = ([("pipeline", str(pipeline_id))] if pipeline_id else []) + query.params(
        page=None, per_page=None, sort=None
    )
    return urlencode(pairs)


def board_context(
    service: DealService, query: ListQuery, builder: FilterBuilder, *, with_builder: bool = False
) -> dict[str, Any]:
    """The board page and its blocks: the cached pipeline, one header aggregate, one windowed card select."""
    board = service.board(
        pipeline_id=get_uuid_param("pipeline"), filter_spec=query.filter_spec, q=query.q, scope=query.scope
    )
    return {
        "board": board,
        "query": query,
        "builder": builder,
        "board_query": _board_query(board.pipeline.id if board.pipeline else None, query),
        "fields_meta": _fields_meta(service) if with_builder or builder.has_errors else None,
    }


@bp.get("/deals/board")
def board():
    query, builder = parse_filtered_list_query(DEAL_FILTERS)
    context = board_context(_service(), query, builder)
    if builder.has_errors:
        return render_list_page(
            "deals/board.html",
            query=query,
            builder=builder,
            list_url=url_for("deals.board"),
            table_block="board",
            **{k: v for k, v in context.items() if k not in ("query", "builder")},
        )
    response = render_page("deals/board.html", block="board", **context)
    if wants_fragment():
        hx_push_url(response, url_for("deals.board") + "?" + context["board_query"])
    return response


@bp.get("/deals/board/filter")
def board_filter():
    query, builder = parse_filtered_list_query(DEAL_FILTERS)
    service = _service()
    return render_page(
        "deals/board.html",
        block="filter_builder",
        query=query,
        builder=builder,
        fields_meta=_fields_meta(service),
        board=None,
    )


@bp.get("/deals/board/column/<uuid:stage_id>")
def board_column(stage_id: uuid.UUID):
    query, _builder = parse_filtered_list_query(DEAL_FILTERS)
    page = _service().board_column(
        stage_id,
        filter_spec=query.filter_spec,
        q=query.q,
        scope=query.scope,
        offset=get_int_param("offset", 0, min_value=0, max_value=1_000_000),
    )
    board_query = _board_query(page.pipeline.id, query)
    if not wants_fragment():  # "load more" opened as a page: the block alone is no page, show the board
        return redirect(url_for("deals.board") + "?" + board_query, 303)
    return render_page("deals/board.html", block="column_page", column_page=page, board=None, board_query=board_query)


def _board_block(service: DealService) -> Response:
    """After a POST from the board: the board block in the state of the query string (pipeline, filter)."""
    query, builder = parse_filtered_list_query(DEAL_FILTERS)
    context = board_context(service, query, builder)
    if not wants_fragment():
        return redirect(url_for("deals.board") + "?" + context["board_query"], 303)
    return hx_trigger(render_page("deals/board.html", block="board", **context), CHANGED)


@bp.post("/deals/board/delete")
def board_delete():
    service = _service()
    deleted = service.delete_many(get_uuid_list("ids"))
    return with_undo(
        _board_block(service),
        f"Deleted {plural(len(deleted), 'deal')}.",
        undo_url=url_for("deals.board_restore") + "?" + request.query_string.decode(),
        ids=deleted,
        target=BOARD,
    )


@bp.post("/deals/board/restore")
def board_restore():
    service = _service()
    restored = service.restore_many(get_uuid_list("ids"))
    return with_toast(_board_block(service), f"Restored {plural(len(restored), 'deal')}.")


def _form_uuid(name: str) -> uuid.UUID | None:
    return parse_uuid(request.form.get(name), name)


def _form_int(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    if not is_whole_number(raw, 9):
        raise BadRequest(f"Field {name!r} must be a whole number.")
    return int(raw)


@bp.post("/deals/<uuid:deal_id>/move")
def move(deal_id: uuid.UUID):
    query, _ = parse_filtered_list_query(DEAL_FILTERS)
    stage_id = _form_uuid("stage_id")
    if stage_id is None:
        raise BadRequest("Choose a stage to move the deal to.")
    result = _service().deal_move(
        deal_id,
        stage_id=stage_id,
        before_id=_form_uuid("before_id"),
        after_id=_form_uuid("after_id"),
        version=_form_int("version"),
        lost_reason=request.form.get("lost_reason", "")[:255] or None,
        filter_spec=query.filter_spec,
        q=query.q,
        scope=query.scope,
    )
    response = render_fragments("deals/board.html", ["move_headers"], move=result, board=None)
    deal = result.deal
    hx_trigger(response, "deal-moved", {"id": str(deal.id), "version": deal.version, "status": deal.status})
    hx_trigger(response, CHANGED)
    if result.from_stage is None or result.from_stage.id != result.to_stage.id:
        with_toast(response, f"{deal.name} moved to {result.to_stage.name}.", timeout=3000)
    return response


# --- detail and forms ------------------------------------------------------------------------


@bp.get("/deals/<uuid:deal_id>")
def detail(deal_id: uuid.UUID):
    return render_page("deals/detail.html", detail=_service().deal_detail(deal_id), lost_form=LostForm())


def _form_page(form: DealForm, service: DealService, deal_id: uuid.UUID | None, *, status: int = 200) -> Response:
    form.set_choices(service.form_choices())
    return render_page("deals/form.html", block="deal_form", form=form, deal_id=deal_id, status=status)


def _saved(deal_id: uuid.UUID, message: str) -> Response:
    flash(message, "info")
    url = url_for("deals.detail", deal_id=deal_id)
    return hx_trigger(hx_location(url), CHANGED) if wants_fragment() else redirect(url, 303)


@bp.get("/deals/new")
def new():
    service = _service()
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
    service = _service()
    form = DealForm()
    form.set_choices(service.form_choices())
    if form.validate_on_submit():
        try:
            deal = service.deal_create(stage_id=form.stage_id.data, **form.values())
            return _saved(deal.id, "Deal created.")
        except ValidationError as error:
            apply_errors(form, error)
    return _form_page(form, service, None, status=422)


@bp.get("/deals/<uuid:deal_id>/edit")
def edit(deal_id: uuid.UUID):
    service = _service()
    deal = service.deal_detail(deal_id).deal
    service.check_can_modify(deal)  # a form the user could not save is not offered
    form = DealForm(obj=deal)
    return _form_page(form, service, deal_id)


@bp.post("/deals/<uuid:deal_id>")
def update(deal_id: uuid.UUID):
    service = _service()
    form = DealForm()
    form.set_choices(service.form_choices())
    status = 422
    if form.validate_on_submit():
        try:
            service.deal_update(
                deal_id, stage_id=form.stage_id.data, expected_version=form.expected_version, **form.values()
            )
            return _saved(deal_id, "Deal saved.")
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as error:  # a stale form: shown again with the typed values and who changed it
            apply_conflict(form, error)
            status = 409
    return _form_page(form, service, deal_id, status=status)


@bp.post("/deals/<uuid:deal_id>/won")
def mark_won(deal_id: uuid.UUID):
    deal = _service().deal_mark_won(deal_id)
    return _detail_changed(deal.id, f"{deal.name} is won.")


@bp.post("/deals/<uuid:deal_id>/lost")
def mark_lost(deal_id: uuid.UUID):
    form = LostForm()
    if not form.validate_on_submit():
        raise BadRequest("The lost reason is too long (at most 255 characters).")
    deal = _service().deal_mark_lost(deal_id, lost_reason=(form.lost_reason.data or "").strip() or None)
    return _detail_changed(deal.id, f"{deal.name} is lost.")


@bp.post("/deals/<uuid:deal_id>/reopen")
def reopen(deal_id: uuid.UUID):
    deal = _service().deal_reopen(deal_id)
    return _detail_changed(deal.id, f"{deal.name} is open again.")


def _detail_changed(deal_id: uuid.UUID, message: str) -> Response:
    if not wants_fragment():
        return redirect(url_for("deals.detail", deal_id=deal_id), 303)
    response = render_page(
        "deals/detail.html", block="deal_summary", detail=_service().deal_detail(deal_id), lost_form=LostForm()
    )
    return hx_trigger(with_toast(response, message), CHANGED)


@bp.post("/deals/<uuid:deal_id>/delete")
def delete(deal_id: uuid.UUID):
    deal = _service().delete(deal_id)
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
    service = _service()
    deal = service.restore(deal_id)
    if not wants_fragment():
        return redirect(url_for("deals.detail", deal_id=deal_id), 303)
    response = render_page(
        "deals/detail.html", block="deal_page", detail=service.deal_detail(deal_id), lost_form=LostForm()
    )
    return hx_trigger(with_toast(response, f"{deal.name} restored."), CHANGED)

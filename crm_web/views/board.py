"""The kanban board: the page and its blocks, "load more" per column, moving a deal (drag and
drop), and deleting or restoring deals from the board."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request, url_for
from flask_login import current_user

from crm_web.errors import BadRequest
from crm_web.htmx import hx_push_url, hx_trigger, wants_fragment
from crm_web.params import get_int_param, get_uuid_list, get_uuid_param, is_whole_number, parse_uuid
from crm_web.rendering import plural, render_fragments, render_page, see_other, with_toast, with_undo
from crm_web.services.board import BoardService
from crm_web.services.deals import DealService
from crm_web.views.deals import CHANGED, fields_meta
from crm_web.views.filtering import FilterBuilder, parse_filtered_list_query, render_list_page
from crm_web.views.generic import acting
from crm_web.views.listing import ListQuery, query_string
from crm_web.views.saved_views import ListOpening, open_list

bp = Blueprint("board", __name__)

BOARD = "#board"


def _board_pairs(pipeline_id: uuid.UUID | None, query: ListQuery) -> list[tuple[str, str]]:
    """The board's whole state (pipeline, search, filter), without any saved view's name."""
    plain = replace(query, view_key=None, view_pairs=None, prefix_pairs=[])
    pairs = [("pipeline", str(pipeline_id))] if pipeline_id else []
    return pairs + plain.params(page=None, per_page=None, sort=None)


def _board_query(pipeline_id: uuid.UUID | None, query: ListQuery) -> str:
    """The board's URL state (pipeline, search, filter) for links, load-more and moves: always the
    whole state, so those requests need no saved view."""
    return urlencode(_board_pairs(pipeline_id, query))


def board_context(
    service: BoardService,
    query: ListQuery,
    builder: FilterBuilder,
    *,
    with_builder: bool = False,
    args: Mapping[str, Any] | None = None,
    opening: ListOpening | None = None,
) -> dict[str, Any]:
    """The board page and its blocks: the cached pipeline, one header aggregate, one windowed card select."""
    pipeline_id = get_uuid_param("pipeline") if args is None else parse_uuid(args.get("pipeline"), "pipeline")
    board = service.board(pipeline_id=pipeline_id, filter_spec=query.filter_spec, q=query.q, scope=query.scope)
    shown = board.pipeline.id if board.pipeline else None
    return {
        "board": board,
        "query": query,
        "builder": builder,
        "board_query": _board_query(shown, query),
        "fields_meta": fields_meta(service.deals) if with_builder or builder.has_errors else None,
        "opening": opening,
        "view_state": [(k, v) for k, v in _board_pairs(shown, query) if k not in ("page", "per_page")],
    }


@bp.get("/deals/board")
def index():
    opening = open_list("board")
    fields = acting(DealService).filter_fields()  # the organisation's custom fields included
    query, builder = parse_filtered_list_query(fields, opening.args)
    opening.apply(query, fields)
    context = board_context(acting(BoardService), query, builder, args=opening.args, opening=opening)
    if builder.has_errors:
        return render_list_page(
            "deals/board.html",
            query=query,
            builder=builder,
            list_url=url_for("board.index"),
            table_block="board",
            **{k: v for k, v in context.items() if k not in ("query", "builder")},
        )
    response = render_page("deals/board.html", block="board", **context)
    if wants_fragment():
        shown = (
            query_string(query.params(page=None, per_page=None, sort=None))
            if query.view_key
            else context["board_query"]
        )
        hx_push_url(response, url_for("board.index") + "?" + shown)
    return response


@bp.get("/deals/board/filter")
def filter_builder():
    query, builder = parse_filtered_list_query(acting(DealService).filter_fields())
    service = acting(BoardService)
    return render_page(
        "deals/board.html",
        block="filter_builder",
        query=query,
        builder=builder,
        fields_meta=fields_meta(service.deals),
        board=None,
    )


@bp.get("/deals/board/column/<uuid:stage_id>")
def column(stage_id: uuid.UUID):
    query, _builder = parse_filtered_list_query(acting(DealService).filter_fields())
    page = acting(BoardService).column(
        stage_id,
        filter_spec=query.filter_spec,
        q=query.q,
        scope=query.scope,
        offset=get_int_param("offset", 0, min_value=0, max_value=1_000_000),
    )
    board_query = _board_query(page.pipeline.id, query)
    if not wants_fragment():  # "load more" opened as a page: the block alone is no page, show the board
        return redirect(url_for("board.index") + "?" + board_query, 303)
    return render_page("deals/board.html", block="column_page", column_page=page, board=None, board_query=board_query)


def _board_block(service: BoardService) -> Response:
    """After a POST from the board: the board block in the state of the query string (pipeline, filter)."""
    query, builder = parse_filtered_list_query(acting(DealService).filter_fields())
    context = board_context(service, query, builder)
    if not wants_fragment():
        return see_other(url_for("board.index") + "?" + context["board_query"])
    return hx_trigger(render_page("deals/board.html", block="board", **context), CHANGED)


@bp.post("/deals/board/fields")
def card_fields():
    """The custom fields this user shows on the cards (deal fields only), then the board again."""
    from crm_web.custom_fields import live_fields
    from crm_web.services.base import Actor
    from crm_web.services.users import UserService

    known = {cf.key for cf in live_fields(current_user.org.custom_fields, "deal")}
    keys = [k for k in dict.fromkeys(request.form.getlist("field")[:100]) if k in known]
    UserService(Actor.of(current_user)).set_list_columns("board", keys)
    query = request.query_string.decode()[:4000]
    return see_other(url_for("board.index") + (f"?{query}" if query else ""))


@bp.post("/deals/board/delete")
def delete():
    service = acting(BoardService)
    deleted = service.deals.delete_many(get_uuid_list("ids"))
    return with_undo(
        _board_block(service),
        f"Deleted {plural(len(deleted), 'deal')}.",
        undo_url=url_for("board.restore") + "?" + request.query_string.decode(),
        ids=deleted,
        target=BOARD,
    )


@bp.post("/deals/board/restore")
def restore():
    service = acting(BoardService)
    restored = service.deals.restore_many(get_uuid_list("ids"))
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
    query, _ = parse_filtered_list_query(acting(DealService).filter_fields())
    stage_id = _form_uuid("stage_id")
    if stage_id is None:
        raise BadRequest("Choose a stage to move the deal to.")
    service = acting(BoardService)
    result = service.move(
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
    response = render_fragments(
        "deals/board.html",
        ["move_headers"],
        move=result,
        board=None,
        today=service.actor.today(),
        board_query=_board_query(result.pipeline.id, query),
    )
    deal = result.deal
    hx_trigger(response, "deal-moved", {"id": str(deal.id), "version": deal.version, "status": deal.status})
    hx_trigger(response, CHANGED)
    if result.from_stage is None or result.from_stage.id != result.to_stage.id:
        with_toast(response, f"{deal.name} moved to {result.to_stage.name}.", timeout=3000)
    return response

"""render_page: a whole page, or (for htmx) just the named block it owns, from one template."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from flask import Flask, Response, make_response, redirect, render_template
from jinja2_fragments.flask import render_block, render_blocks

from crm_web.htmx import wants_fragment


def render_page(template: str, block: str | None = None, *, status: int = 200, **context: Any) -> Response:
    """Render `template`; for a fragment request with `block`, only that block.

    Block names are the snake_case of the DOM id they replace (`contact_table` <-> `#contact-table`).
    """
    if block and wants_fragment():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return make_response(body, status)


def render_fragments(template: str, blocks: list[str], *, status: int = 200, **context: Any) -> Response:
    """Several blocks of one template in one response (the extra ones carry hx-swap-oob)."""
    return make_response(render_blocks(template, blocks, **context), status)


def toast_html(message: str, kind: str = "success", **extra: Any) -> str:
    """An out-of-band toast to append to any htmx response."""
    return render_template("components/toast.html", message=message, kind=kind, oob=True, **extra)


def with_toast(response: Response, message: str, kind: str = "success", **extra: Any) -> Response:
    response.set_data(response.get_data(as_text=True) + toast_html(message, kind, **extra))
    return response


def with_undo(
    response: Response,
    message: str,
    *,
    undo_url: str,
    ids: Iterable[Any] | None = None,
    vals: Mapping[str, Any] | None = None,
    target: str | None = None,
) -> Response:
    """The answer to every delete: a toast whose Undo button posts to `undo_url` for 10 seconds.

    `ids` (a bulk delete) are posted back as `ids`, so Undo restores exactly the rows deleted;
    `target` is the block the restore answer re-renders (the list table, the board), putting the
    rows back in place; without it the restore answers with its own navigation. `vals`: more values
    the Undo posts (the tag to remove again, the rows' previous values).
    """
    extra: dict[str, Any] = {"undo_url": undo_url}
    if ids is not None:
        extra["undo_vals"] = {"ids": [str(i) for i in ids]}
    if vals:
        extra["undo_vals"] = {**extra.get("undo_vals", {}), **vals}
    if target:
        extra["undo_target"] = target
    return with_toast(response, message, **extra)


def see_other(url: str) -> Response:
    """A 303 to `url` (Post/Redirect/Get), typed as the app's Response like the rendered ones."""
    return cast(Response, redirect(url, 303))


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """'1 contact', '3 contacts', '2 companies' (for toasts)."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def init_app(app: Flask) -> None:
    from crm_web import templating

    templating.register(app)

"""What every list page reads from its URL (page, size, sort, search, owner scope, filter),
and how it builds links that keep the rest of the URL intact.

With a saved view open (views/saved_views.py) the links name the view: `?view=<id>` while the list
shows the view's own state, `?view=<id>&state=1&...` (the whole state) once it was changed; the
page itself is never part of a view.

A page deeper than the numbered ones is named by `cursor` (services/pagination.py): a signed token
that only the pager's links carry; any other change of the list state (sort, size, search, filter)
drops it and starts again from the first page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import current_app, request

from crm_web.errors import BadRequest
from crm_web.params import get_choice_param, get_int_param, get_text_param
from crm_web.services.pagination import PAGE_SIZES, BadCursor, Cursor, decode_cursor, encode_cursor

MAX_CURSOR_LENGTH = 2000

# Parameters that belong to the list state (everything else in the URL is the filter).
LIST_KEYS = ("q", "scope", "sort", "per_page", "page", "cols")


@dataclass
class ListQuery:
    page: int = 1
    per_page: int = 25
    sort: str | None = None
    q: str = ""
    scope: str = "all"  # "mine" or "all"
    filter_spec: Any = None
    cols: str | None = None  # the visible columns in order, comma-separated keys (views/columns.py)
    filter_pairs: list[tuple[str, str]] = field(default_factory=list)
    # State a list keeps besides the above, before it: the board's pipeline, the activities' quick view.
    prefix_pairs: list[tuple[str, str]] = field(default_factory=list)
    # The saved view the list was opened with (its key) and that view's state, to tell "modified".
    view_key: str | None = None
    view_pairs: list[tuple[str, str]] | None = None
    cursor: Cursor | None = None  # a deep page's start (then `page` is 1)

    def state_pairs(self, **overrides: Any) -> list[tuple[str, str]]:
        """The list state a saved view stores (everything but the page), in canonical order."""
        state: dict[str, Any] = {
            "q": self.q or None,
            "scope": self.scope if self.scope != "all" else None,
            "sort": self.sort,
            "per_page": self.per_page if self.per_page != 25 else None,
            "cols": self.cols,
        }
        state.update((k, v) for k, v in overrides.items() if k != "page")
        pairs = [(k, str(v)) for k in LIST_KEYS if k != "page" and (v := state.get(k)) not in (None, "")]
        return [*self.prefix_pairs, *pairs, *self.filter_pairs]

    @property
    def modified(self) -> bool:
        """Whether the list shows another state than its open view's."""
        return self.view_key is not None and self.state_pairs() != self.view_pairs

    def state_inputs(self) -> list[tuple[str, str]]:
        """The hidden inputs the list's controls send along: the whole state but page and q (each control
        sends its own), with an open view named and marked as given in full."""
        if self.view_key is None:
            return self.params(page=None, q=None)
        return [("view", self.view_key), ("state", "1"), *self.state_pairs(q=None)]

    def page_args(self) -> dict[str, Any]:
        """The keyword arguments of an entity service's `list_page`."""
        return {
            "filter_spec": self.filter_spec,
            "q": self.q,
            "scope": self.scope,
            "sort": self.sort,
            "page": self.page,
            "per_page": self.per_page,
            "cursor": self.cursor,
        }

    def _cursor_pairs(self, overrides: dict[str, Any]) -> list[tuple[str, str]]:
        """The cursor of the page shown (or an override's): kept only while the page is not changed."""
        cursor = overrides.pop("cursor", None if "page" in overrides else self.cursor)
        return [("cursor", encode_cursor(cursor, current_app.secret_key or ""))] if cursor else []

    def params(self, **overrides: Any) -> list[tuple[str, str]]:
        """The canonical query pairs of this list state, with overrides (None removes a key)."""
        overrides = dict(overrides)
        cursor = self._cursor_pairs(overrides)
        if self.view_key is not None:
            page = overrides.get("page", self.page if self.page != 1 else None)
            tail = [("page", str(page))] if page not in (None, "", 1) else []
            tail += cursor
            current = self.state_pairs(**overrides)
            if current == self.view_pairs:
                return [("view", self.view_key), *tail]
            return [("view", self.view_key), ("state", "1"), *current, *tail]
        state: dict[str, Any] = {
            "q": self.q or None,
            "scope": self.scope if self.scope != "all" else None,
            "sort": self.sort,
            "per_page": self.per_page if self.per_page != 25 else None,
            "page": self.page if self.page != 1 else None,
            "cols": self.cols,
        }
        state.update(overrides)
        pairs = [(k, str(v)) for k in LIST_KEYS if (v := state.get(k)) not in (None, "")]
        return [*self.prefix_pairs, *pairs, *cursor, *self.filter_pairs]

    def url(self, base: str, **overrides: Any) -> str:
        pairs = self.params(**overrides)
        return f"{base}{'&' if '?' in base else '?'}{urlencode(pairs, safe=':,')}" if pairs else base

    def sort_url(self, base: str, key: str) -> str:
        """Clicking a header sorts by it; clicking the sorted header reverses the order."""
        new = f"-{key}" if self.sort == key else key
        return self.url(base, sort=new, page=None)

    def sort_state(self, key: str) -> str:
        if self.sort == key:
            return "sort-asc"
        if self.sort == f"-{key}":
            return "sort-desc"
        return ""


def parse_list_query(filter_fields: Any = None, args: Mapping[str, Any] | None = None) -> ListQuery:
    """Read the list state from request.args (or `args`); a filter is parsed against `filter_fields`."""
    args = request.args if args is None else args
    query = ListQuery(
        page=get_int_param("page", 1, min_value=1, max_value=1_000_000, args=args),
        per_page=get_int_param("per_page", 25, min_value=1, max_value=max(PAGE_SIZES), args=args),
        sort=get_text_param("sort", max_length=40, args=args) or None,
        q=get_text_param("q", args=args),
        scope=get_choice_param("scope", ("all", "mine"), "all", args=args),
        cols=get_text_param("cols", max_length=2000, args=args) or None,
        cursor=parse_cursor(get_text_param("cursor", max_length=MAX_CURSOR_LENGTH, args=args)),
    )
    if filter_fields:
        from crm_web.filters import encode_filter, parse_filter

        spec = parse_filter(args, filter_fields)
        query.filter_spec = None if spec.is_empty else spec
        query.filter_pairs = encode_filter(spec) if not spec.is_empty else []
    return query


def parse_cursor(token: str) -> Cursor | None:
    """The cursor of a pager link; a forged or garbled one is a 400 that says what to do."""
    if not token:
        return None
    try:
        return decode_cursor(token, current_app.secret_key or "")
    except BadCursor:
        raise BadRequest("This page link is broken or out of date: open the list again from its first page.") from None


def query_string(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs, safe=":,")

"""Pages of a list: numbered pages near the start, cursors (keyset) beyond them, a bounded total.

A list counts its rows only up to `count_bound()` (LIST_COUNT_BOUND): past it the total is "more than"
the bound, so no page counts a million rows. `?page=N` (an OFFSET) reaches the pages that start within
the bound; deeper pages, and the last page of a list too long to count, are read by cursor: the sort
key of the page's last (or first) row plus its id, signed, so the next page is read from the index
starting right after that row, whatever its depth. A searched list counts its matches only to
`search_count_bound()` and keeps numbered pages up to it, without cursors (Page.seekable). See
docs/design.md, "Deep pages" and "Searched lists".
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Column, ColumnElement, and_, false, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, Label, UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

from crm_web.services.sql import AnySelect

T = TypeVar("T")

MAX_PER_PAGE = 100
PAGE_SIZES = (10, 25, 50, 100)
COUNT_BOUND = 10_000  # LIST_COUNT_BOUND's default
CUSTOM_COUNT_BOUND = 1_000  # LIST_CUSTOM_COUNT_BOUND's default
SEARCH_COUNT_BOUND = 1_000  # LIST_SEARCH_COUNT_BOUND's default
DIRECTIONS = ("next", "prev", "last")


def count_bound() -> int:
    """How far a list counts its rows (the app's LIST_COUNT_BOUND; the default outside a request)."""
    from flask import current_app, has_app_context

    return int(current_app.config.get("LIST_COUNT_BOUND", COUNT_BOUND)) if has_app_context() else COUNT_BOUND


def custom_count_bound() -> int:
    """How far a list filtered on a custom field counts its rows (the app's LIST_CUSTOM_COUNT_BOUND, never
    past count_bound()). A custom field's value is inside the row's JSON document, which no index-only
    scan returns: each row counted is read from the table (a block per row in a big organisation), so
    such a list says "more than" sooner."""
    from flask import current_app, has_app_context

    configured = (
        int(current_app.config.get("LIST_CUSTOM_COUNT_BOUND", CUSTOM_COUNT_BOUND))
        if has_app_context()
        else CUSTOM_COUNT_BOUND
    )
    return min(configured, count_bound())


def search_count_bound() -> int:
    """How far a searched list counts its matches (the app's LIST_SEARCH_COUNT_BOUND, never past
    count_bound()). A match is decided on the row itself (its words are tested in the table's row
    after the trigram index narrowed them down), so each counted match reads a table block: a common
    name's thousands of matches are "more than" the bound, and its pages are numbered up to it."""
    from flask import current_app, has_app_context

    configured = (
        int(current_app.config.get("LIST_SEARCH_COUNT_BOUND", SEARCH_COUNT_BOUND))
        if has_app_context()
        else SEARCH_COUNT_BOUND
    )
    return min(configured, count_bound())


def reads_column(criteria: Sequence[Any], column: Any) -> bool:
    """Whether any of the criteria reads `column` (a table's Column)."""
    return any(element is column for clause in criteria for element in visitors.iterate(clause))


_PATTERN_OPERATORS = {operators.ilike_op, operators.like_op, operators.not_ilike_op, operators.not_like_op}


def tests_substrings(criteria: Sequence[Any]) -> bool:
    """Whether any of the criteria matches a pattern that starts with a wildcard (a filter's "contains"
    or "ends with"): no b-tree range finds its rows, so each row is decided on its text."""
    return any(
        isinstance(element, BinaryExpression)
        and element.operator in _PATTERN_OPERATORS
        and isinstance(getattr(element.right, "value", None), str)
        and element.right.value.startswith("%")
        for clause in criteria
        for element in visitors.iterate(clause)
    )


def filtered_count_bound(criteria: Sequence[Any], table: Any) -> int:
    """How far a list filtered by `criteria` counts its rows: count_bound(), or the lower bound of a
    filter that decides each row on the row itself, its text (a substring) or a custom field's value
    (custom_count_bound)."""
    custom = getattr(table.c, "custom", None)
    if custom is not None and reads_column(criteria, custom):
        return custom_count_bound()
    if tests_substrings(criteria):
        return search_count_bound()
    return count_bound()


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after (`next`) or before (`prev`) the row whose sort key is `values` (the
    last one is its id), or the end of the list (`last`). `page` is the number of the page it leads to
    when known: shown, never used to read."""

    direction: str
    sort: str
    values: tuple[Any, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class PageLink:
    """A pager link: a page number, or a cursor for a page a number does not reach."""

    page: int | None = None
    cursor: Cursor | None = None


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int  # 0: not known (a page counted back from the end of a list too long to count)
    per_page: int
    extra: dict[str, Any] = field(default_factory=dict)
    more: bool = False  # the total is the count bound: the list has more rows than `total`
    numbered: int = 0  # the deepest page a number reaches (0: every page)
    next_cursor: Cursor | None = None
    prev_cursor: Cursor | None = None
    sort: str = ""
    after: bool | None = None  # rows after this page (None: from the total)
    before: bool | None = None  # rows before it (None: from the page number)
    seekable: bool = True  # False: no cursor reads past the numbered pages (a search: narrow it instead)

    @property
    def pages(self) -> int:
        return page_count(self.total, self.per_page)

    @property
    def has_prev(self) -> bool:
        return self.page > 1 if self.before is None else self.before

    @property
    def has_next(self) -> bool:
        return self.page < self.pages if self.after is None else self.after

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 or not self.page else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        if self.more:
            return self.first_index + len(self.items) - 1 if self.page else 0
        return min(self.total, self.page * self.per_page)

    def _numbered(self, number: int) -> bool:
        return number >= 1 and (not self.numbered or number <= self.numbered)

    @property
    def prev_link(self) -> PageLink | None:
        if not self.has_prev:
            return None
        if self.page and self._numbered(self.page - 1):
            return PageLink(page=self.page - 1)
        return PageLink(cursor=self.prev_cursor) if self.prev_cursor else PageLink(page=1)

    @property
    def next_link(self) -> PageLink | None:
        if not self.has_next:
            return None
        if self.page and self._numbered(self.page + 1):
            return PageLink(page=self.page + 1)
        return PageLink(cursor=self.next_cursor) if self.next_cursor else None

    @property
    def first_link(self) -> PageLink | None:
        """The first page, from a page the Prev link does not lead back to it."""
        return PageLink(page=1) if self.has_prev and self.page != 2 else None

    @property
    def last_link(self) -> PageLink | None:
        """The last page: its number while the total is exact, else read backwards from the end."""
        if not self.has_next or (self.page == self.pages - 1 and not self.more) or (self.more and not self.seekable):
            return None
        return PageLink(cursor=Cursor("last", self.sort)) if self.more else PageLink(page=self.pages)


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def clamp_per_page(per_page: int) -> int:
    return max(1, min(per_page, MAX_PER_PAGE))


def clamp_page(page: int, total: int, per_page: int) -> int:
    """A page past the end shows the last page; anything below 1 the first."""
    return max(1, min(page, page_count(total, per_page)))


def bounded_count(filtered: AnySelect, bound: int) -> Any:
    """How many rows `filtered` selects, counting no further than bound + 1 (an index range read that
    stops there): a scalar subquery. `filtered` selects the model's id, not a constant: the soft
    delete's criteria (models/base.py) apply only to a statement that names the entity."""
    return select(func.count()).select_from(filtered.limit(bound + 1).subquery()).scalar_subquery()


# --- the sort key and the seek ----------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    expr: Any
    descending: bool
    nullable: bool

    def flipped(self) -> SortKey:
        return replace(self, descending=not self.descending)

    def ordered(self) -> Any:
        return self.expr.desc() if self.descending else self.expr.asc()


def _nullable(expr: Any, table: Any) -> bool:
    """Whether an order expression may be NULL: a column of the listed table says so (another table's
    is outer joined); lower()/upper() of one is as nullable as it; anything else (a subquery, a custom
    field) may be."""
    if isinstance(expr, Label):
        return _nullable(expr.element, table)
    if isinstance(expr, Column):
        return expr.table is not table or bool(expr.nullable)
    if isinstance(expr, FunctionElement) and expr.name in ("lower", "upper"):
        args = list(expr.clauses)
        return len(args) != 1 or _nullable(args[0], table)
    return True


def sort_keys(order: Sequence[Any], table: Any = None) -> list[SortKey]:
    """The order's expressions and directions (the last is the row id, which makes it total);
    `table`: the listed one, whose columns' NOT NULL is trusted."""
    keys = []
    for item in order:
        descending = isinstance(item, UnaryExpression) and item.modifier is operators.desc_op
        if isinstance(item, UnaryExpression) and item.modifier in (operators.desc_op, operators.asc_op):
            item = item.element
        expr = item.element if isinstance(item, Label) else item
        keys.append(SortKey(expr, descending, _nullable(expr, table)))
    return keys


def _nulls_after(key: SortKey, nulls_high: bool) -> bool:
    """Whether NULLs come after the values in this key's direction: PostgreSQL sorts NULL above every
    value (last when ascending), SQLite below (first)."""
    return nulls_high != key.descending


def _later(key: SortKey, value: Any, nulls_high: bool) -> ColumnElement[bool]:
    after = _nulls_after(key, nulls_high)
    if value is None:
        return key.expr.is_not(None) if not after else false()
    beyond = key.expr < value if key.descending else key.expr > value
    return or_(beyond, key.expr.is_(None)) if key.nullable and after else beyond


def _same(key: SortKey, value: Any) -> ColumnElement[bool]:
    return key.expr.is_(None) if value is None else key.expr == value


def _from(key: SortKey, value: Any, nulls_high: bool) -> ColumnElement[bool] | None:
    """The first key's inclusive bound: the range of the index the read starts from."""
    after = _nulls_after(key, nulls_high)
    if value is None:
        return key.expr.is_(None) if after else None
    bound = key.expr <= value if key.descending else key.expr >= value
    return or_(bound, key.expr.is_(None)) if key.nullable and after else bound


def _later_chain(keys: Sequence[SortKey], values: Sequence[Any], nulls_high: bool) -> ColumnElement[bool]:
    later: ColumnElement[bool] | None = None
    for key, value in reversed(list(zip(keys, values, strict=True))):
        step = _later(key, value, nulls_high)
        later = step if later is None else or_(step, and_(_same(key, value), later))
    assert later is not None
    return later


def _run(keys: Sequence[SortKey], values: Sequence[Any]) -> int:
    """How many leading keys share the first one's direction and can hold no NULL (nor does the cursor):
    those compare as one row value, (k1, k2) >= (v1, v2), which an index on them reads as one range."""
    run = 0
    for key, value in zip(keys, values, strict=True):
        if key.nullable or value is None or key.descending != keys[0].descending:
            break
        run += 1
    return run


def _row_value(keys: Sequence[SortKey], values: Sequence[Any]) -> Any:
    """The cursor's values bound with their keys' types (a UUID as the id column stores it)."""
    return tuple_(*(literal(value, key.expr.type) for key, value in zip(keys, values, strict=True)))


def seek(
    stmt: AnySelect, keys: Sequence[SortKey], values: Sequence[Any], *, total: Any, nulls_high: bool, limit: int
) -> Any:
    """`stmt` (the ids and their keys k0, k1, ...) cut to the first `limit` rows strictly after `values`
    in the order of `keys`, NULLs where the database sorts them: (k1 > v1) OR (k1 = v1 AND ((k2 > v2)
    OR ...)), led by an inclusive bound on the leading keys, (k1, k2) >= (v1, v2) as a row value, so
    the read starts in the index at the cursor instead of filtering every row before it; when every
    key can take part, the row value alone says it. A nullable k1 whose NULLs and values both follow
    the cursor ("k1 >= v1 OR k1 IS NULL", or "k1 IS NULL AND ... OR k1 IS NOT NULL") is no index
    range: the two ranges are read apart (each at most `limit` rows) and put back in order. `total`
    (a column) is added last, once."""
    order = [key.ordered() for key in keys]
    first, value = keys[0], values[0]
    run = _run(keys, values)
    if run == len(keys):
        row, cursor = tuple_(*(key.expr for key in keys)), _row_value(keys, values)
        stmt = stmt.add_columns(total).where(row < cursor if first.descending else row > cursor)
        return stmt.order_by(*order).limit(limit)
    later = _later_chain(keys, values, nulls_high)
    after = _nulls_after(first, nulls_high)
    if first.nullable and (value is None) != after:
        if value is None:  # among the NULLs, which come first: the rest of them, then every value
            parts = [stmt.where(first.expr.is_(None), later), stmt.where(first.expr.is_not(None))]
        else:  # among the values, whose NULLs come after: the rest of the values, then the NULLs
            start = first.expr <= value if first.descending else first.expr >= value
            parts = [stmt.where(start, later), stmt.where(first.expr.is_(None))]
        ranges = [part.order_by(*order).limit(limit).subquery() for part in parts]
        both = union_all(*(select(part) for part in ranges)).subquery()
        ordered = (SortKey(both.c[f"k{i}"], key.descending, key.nullable) for i, key in enumerate(keys))
        return select(*both.c, total).order_by(*(key.ordered() for key in ordered)).limit(limit)
    if run > 1:
        row, cursor = tuple_(*(key.expr for key in keys[:run])), _row_value(keys[:run], values[:run])
        bound: ColumnElement[bool] | None = row <= cursor if first.descending else row >= cursor
    else:
        bound = _from(first, value, nulls_high)
    stmt = stmt.add_columns(total).where(*([later] if bound is None else [bound, later]))
    return stmt.order_by(*order).limit(limit)


def read_page(
    session: Session,
    ids: AnySelect,
    order: Sequence[Any],
    *,
    counted: Any,
    sort: str,
    per_page: int,
    page: int,
    cursor: Cursor | None,
    nulls_high: bool,
    bound: int,
    table: Any = None,
) -> Page[Any]:
    """One page's ids (as `items`) with its bounded total and its links, in ONE statement: the ids
    and sort keys of per_page + 1 rows (the extra one says whether more follow) and the total
    (`counted`: a bounded_count). Only a numbered page past the end costs two more (count, re-read)."""
    keys = sort_keys(order, table)
    keyed = ids.add_columns(*(key.expr.label(f"k{i}") for i, key in enumerate(keys)))  # row: id, keys, total
    total = counted.label("total")
    stmt = keyed.add_columns(total)
    numbered = page_count(bound, per_page)
    if cursor is not None and (cursor.sort != sort or (cursor.direction != "last" and len(cursor.values) != len(keys))):
        cursor = None  # another sort's cursor (the sort changed under it): the first page
    if cursor is None:
        page = max(1, min(page, numbered))
        stmt = stmt.order_by(*order).limit(per_page + 1)
        rows = session.execute(stmt.offset((page - 1) * per_page)).all()
        if not rows and page > 1:
            page = clamp_page(page, min(session.scalar(select(counted)) or 0, bound), per_page)
            rows = session.execute(stmt.offset((page - 1) * per_page)).all()
        further = len(rows) > per_page
        after, before = further, page > 1
    else:
        backwards = cursor.direction != "next"
        read = [key.flipped() for key in keys] if backwards else keys
        if cursor.direction == "last":
            cut = stmt.order_by(*(key.ordered() for key in read)).limit(per_page + 1)
        else:
            cut = seek(keyed, read, cursor.values, total=total, nulls_high=nulls_high, limit=per_page + 1)
        rows = list(session.execute(cut))
        if not rows:  # nothing left that side of the cursor (deleted since): the first page
            return read_page(
                session,
                ids,
                order,
                counted=counted,
                sort=sort,
                per_page=per_page,
                page=1,
                cursor=None,
                nulls_high=nulls_high,
                bound=bound,
                table=table,
            )
        further = len(rows) > per_page
        rows = rows[:per_page]
        if backwards:
            rows.reverse()
        after, before = (True, further) if backwards else (further, True)
        if cursor.direction == "last":
            after = False
        page = cursor.page or 0
    rows = rows[:per_page]
    counted_total = int(rows[0][-1]) if rows else 0
    more = counted_total > bound
    total = bound if more else counted_total
    if cursor is not None and cursor.direction == "last" and not more:
        page = page_count(total, per_page)
    if page == 1:
        before = False
    result: Page[Any] = Page(
        items=[row[0] for row in rows],
        total=total,
        page=page,
        per_page=per_page,
        more=more,
        numbered=numbered if more else 0,
        sort=sort,
        after=after,
        before=before,
    )
    if after:
        result.next_cursor = Cursor("next", sort, tuple(rows[-1][1:-1]), page + 1 if page else None)
    if before:
        result.prev_cursor = Cursor("prev", sort, tuple(rows[0][1:-1]), page - 1 if page > 1 else None)
    return result


# --- the cursor in a URL ------------------------------------------------------------------------------


class BadCursor(ValueError):
    """A cursor that was not made here, or not for this list."""


def _serializer(secret: str | bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="list-cursor")


def _tagged(value: Any) -> Any:
    """A sort key value as JSON: the types the order's expressions give back, tagged where JSON has none."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return ["N", str(value)]
    if isinstance(value, datetime):
        return ["T", value.isoformat()]
    if isinstance(value, date):
        return ["D", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["U", value.hex]
    raise TypeError(f"A sort key of type {type(value).__name__} cannot go into a cursor.")


def _untagged(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    tag, text = value
    readers: dict[str, Callable[[str], Any]] = {
        "N": Decimal,
        "T": datetime.fromisoformat,
        "D": date.fromisoformat,
        "U": uuid.UUID,
    }
    return readers[tag](text)


def encode_cursor(cursor: Cursor, secret: str | bytes) -> str:
    payload = [cursor.direction, cursor.sort, [_tagged(v) for v in cursor.values], cursor.page]
    return str(_serializer(secret).dumps(payload))


def decode_cursor(token: str, secret: str | bytes) -> Cursor:
    """The cursor a link carried; BadCursor when it was not signed here or does not read as one."""
    try:
        direction, sort, values, page = _serializer(secret).loads(token)
        if direction not in DIRECTIONS or not isinstance(sort, str) or not isinstance(values, list):
            raise ValueError(direction)
        if page is not None and (not isinstance(page, int) or page < 1):
            raise ValueError(page)
        return Cursor(direction, sort, tuple(_untagged(v) for v in values), page)
    except (BadSignature, ValueError, TypeError, KeyError) as error:
        raise BadCursor(str(error)) from None

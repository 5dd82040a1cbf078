"""Pages of a list: the one page clamp every list uses, and the page's ids cut before any eager load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from crm_web.services.sql import AnySelect

T = TypeVar("T")

MAX_PER_PAGE = 100
PAGE_SIZES = (10, 25, 50, 100)


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return page_count(self.total, self.per_page)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def clamp_per_page(per_page: int) -> int:
    return max(1, min(per_page, MAX_PER_PAGE))


def clamp_page(page: int, total: int, per_page: int) -> int:
    """A page past the end shows the last page; anything below 1 the first."""
    return max(1, min(page, page_count(total, per_page)))


def page_ids(ids: AnySelect, order: Sequence[Any], *, per_page: int, page: int) -> Any:
    """The ids of one page as a subquery: the filtered set is sorted and cut to the page BEFORE eager
    joins and per-row counts run, so they run for the page's rows only. `ids` selects the model's id
    with the criteria and any joins the order needs; the outer statement repeats `order` (the IN list
    has none) over those few rows."""
    return ids.order_by(*order).limit(per_page).offset((page - 1) * per_page).scalar_subquery()

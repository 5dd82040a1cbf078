"""The server side of every list page's filter builder and active search.

`parse_filtered_list_query(fields)` reads the list state like `parse_list_query`, but an
invalid filter does not raise: the engine's per-row results (filters/grammar.parse_rows) come
back as a `FilterBuilder` whose rows carry their errors inline, in canonical order (top-level
rows first, then each group's, which is also the builder's DOM order). `render_list_page` then
answers:

- filter OK, htmx: the table block, with `HX-Push-Url` set to the canonical list URL;
- filter invalid, htmx: status 422 with the builder block re-rendered (HX-Retarget to
  `#filter-builder`, no URL push), so the rows the user typed stay and show the errors;
- full page: the whole page (422 when the filter is invalid; the table is then unfiltered
  and says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Response, request

from crm_web.errors import BadRequest
from crm_web.filters import (
    Condition,
    FilterRow,
    FilterSpec,
    ParsedFilter,
    describe_fields,
    encode_filter,
    parse_rows,
)
from crm_web.htmx import hx_push_url, wants_fragment
from crm_web.rendering import render_page
from crm_web.views.listing import ListQuery, parse_list_query


@dataclass
class BuilderRow:
    field: str = ""
    op: str = ""
    value: str = ""
    error: str = ""


@dataclass
class BuilderGroup:
    rows: list[BuilderRow]
    match: str = "all"


@dataclass
class FilterBuilder:
    """What the builder macro renders: rows as the user wrote them, plus any inline errors."""

    rows: list[BuilderRow] = field(default_factory=list)
    groups: list[BuilderGroup] = field(default_factory=list)
    match: str = "all"
    error: str = ""  # a message not tied to one row (e.g. a bad `match`)

    @property
    def has_errors(self) -> bool:
        return bool(self.error) or any(r.error for r in self.all_rows)

    @property
    def all_rows(self) -> list[BuilderRow]:
        return [*self.rows, *(r for g in self.groups for r in g.rows)]

    @property
    def count(self) -> int:
        return len(self.all_rows)


def _format_value(op: str, value: Any) -> str:
    """The builder's text form of a parsed value (the engine's own canonical encoding)."""
    encoded = encode_filter(FilterSpec((Condition("x", op, value),)))[0][1]
    return encoded.split(".", 2)[2] if encoded.count(".") >= 2 else ""


def builder_from_rows(parsed: ParsedFilter) -> FilterBuilder:
    """The builder of a parsed filter: valid rows in their canonical text, or (when any row is wrong)
    every row as typed with its own error."""
    valid = parsed.ok
    if valid and not parsed.rows:
        return FilterBuilder()
    builder = FilterBuilder(match=parsed.match, error=parsed.error)

    def row(r: FilterRow) -> BuilderRow:
        if valid and r.condition is not None:
            return BuilderRow(r.condition.field, r.condition.op, _format_value(r.condition.op, r.condition.value))
        return BuilderRow(r.field, r.op, r.value, r.error)

    groups: dict[int, BuilderGroup] = {}
    for r in parsed.rows:
        if r.group:
            groups.setdefault(r.group, BuilderGroup([], parsed.group_matches.get(r.group, "all"))).rows.append(row(r))
        else:
            builder.rows.append(row(r))
    builder.groups = [groups[n] for n in sorted(groups)]
    if not valid and not builder.has_errors and parsed.problem is not None:
        builder.error = parsed.problem.message
    return builder


def parse_filtered_list_query(
    filter_fields: Any, args: Mapping[str, Any] | None = None
) -> tuple[ListQuery, FilterBuilder]:
    """The list state (from request.args, or `args`) plus the builder; an invalid filter is returned
    inline, never raised.

    Malformed page/per_page/sort/scope still raise BadRequest (400): those are not user typing.
    """
    args = request.args if args is None else args
    query = parse_list_query(None, args)
    parsed = parse_rows(args, filter_fields)
    if parsed.ok:
        spec = parsed.spec
        query.filter_spec = None if spec.is_empty else spec
        query.filter_pairs = encode_filter(spec) if not spec.is_empty else []
    return query, builder_from_rows(parsed)


def checked_for_export(query: ListQuery, builder: FilterBuilder) -> ListQuery:
    """The list state for a CSV export: there is no page to show an invalid filter on, so an invalid
    filter is a 400 naming each bad condition."""
    if builder.has_errors:
        raise BadRequest("Fix the filter before exporting: " + "; ".join(r.error for r in builder.all_rows if r.error))
    return query


def builder_fields(
    fields: Mapping[str, Any],
    *,
    tags: Sequence[tuple[Any, str]] = (),
    choices: Mapping[str, Sequence[tuple[Any, str]]] | None = None,
) -> list[dict[str, Any]]:
    """describe_fields() plus the choices only the view knows: the org's tags (every tag field)
    and e.g. owners for a uuid field (`choices={"owner": [(id, name), ...]}`)."""
    described = describe_fields(fields)
    extra = dict(choices or {})
    for entry in described:
        options = tags if entry["type"] == "tag" else extra.get(entry["name"])
        if options:
            entry["choices"] = [{"value": str(value), "label": label} for value, label in options]
    return described


def owner_choices_of(service: Any, owners: Sequence[tuple[Any, str]]) -> dict[str, Sequence[tuple[Any, str]]]:
    """The users offered by the builder: for the owner and for every custom field of type user."""
    choices: dict[str, Sequence[tuple[Any, str]]] = {"owner": owners}
    for cf in service.custom_fields() if hasattr(service, "custom_fields") else ():
        if cf.type == "user":
            choices[cf.name] = owners
    return choices


def render_list_page(
    template: str,
    *,
    query: ListQuery,
    builder: FilterBuilder,
    list_url: str,
    table_block: str,
    builder_block: str = "filter_builder",
    **context: Any,
) -> Response:
    """A list page, its table block (URL pushed in canonical form) or its builder with errors (422)."""
    context.update(query=query, builder=builder, list_url=list_url)
    if builder.has_errors:
        response = render_page(template, block=builder_block, status=422, **context)
        if wants_fragment():
            response.headers["HX-Retarget"] = "#" + builder_block.replace("_", "-")
            response.headers["HX-Reswap"] = "outerHTML"
            response.headers["HX-Push-Url"] = "false"
        return response
    response = render_page(template, block=table_block, **context)
    if wants_fragment():
        hx_push_url(response, query.url(list_url))
    return response

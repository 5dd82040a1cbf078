"""The server side of every list page's filter builder and active search.

`parse_filtered_list_query(fields)` reads the list state like `parse_list_query`, but an
invalid filter does not raise: it comes back as a `FilterBuilder` whose rows carry the
error inline (the `f[i]` index of the engine's ValidationError is the row's position in
canonical order: top-level rows first, then each group's, which is also the builder's DOM
order). `render_list_page` then answers:

- filter OK, htmx: the table block, with `HX-Push-Url` set to the canonical list URL;
- filter invalid, htmx: status 422 with the builder block re-rendered (HX-Retarget to
  `#filter-builder`, no URL push), so the rows the user typed stay and show the errors;
- full page: the whole page (422 when the filter is invalid; the table is then unfiltered
  and says so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Response, request

from crm_web.errors import BadRequest, ValidationError
from crm_web.htmx import hx_push_url, wants_fragment
from crm_web.params import is_whole_number
from crm_web.rendering import render_page
from crm_web.views.listing import ListQuery, parse_list_query

_ERROR_KEY = re.compile(r"^f\[(\d+)\]$")


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
    from crm_web.filters.spec import Condition, FilterSpec, encode_filter

    encoded = encode_filter(FilterSpec((Condition("x", op, value),)))[0][1]
    return encoded.split(".", 2)[2] if encoded.count(".") >= 2 else ""


def builder_from_spec(spec: Any) -> FilterBuilder:
    if spec is None:
        return FilterBuilder()

    def rows(conditions: Sequence[Any]) -> list[BuilderRow]:
        return [BuilderRow(c.field, c.op, _format_value(c.op, c.value)) for c in conditions]

    groups = [BuilderGroup(rows(g.conditions), g.match) for g in spec.groups if g.conditions]
    return FilterBuilder(rows(spec.conditions), groups, spec.match)


def _raw_rows(args: Any) -> list[tuple[int, BuilderRow]]:
    """(group, row) in the order the engine numbers conditions; mirrors parse_filter's input rules."""
    collected: list[tuple[int, int, BuilderRow]] = []
    if args.getlist("f"):
        for position, raw in enumerate(args.getlist("f")[:50]):
            head, _, rest = raw.partition(".")
            op, _, value = rest.partition(".")
            group_text, colon, name = head.partition(":")
            group = int(group_text) if colon and is_whole_number(group_text, 3) else 0
            collected.append((group, position, BuilderRow(name if colon else head, op, value)))
    else:
        fields, ops, values, groups = (args.getlist(k) for k in ("field", "op", "value", "group"))
        for position, name in enumerate(fields[:50]):
            if not name.strip():
                continue
            group_text = groups[position].strip() if position < len(groups) else ""
            group = int(group_text) if is_whole_number(group_text, 3) else 0
            op = ops[position] if position < len(ops) else ""
            value = values[position] if position < len(values) else ""
            collected.append((group, position, BuilderRow(name.strip(), op.strip(), value)))
    collected.sort(key=lambda item: (item[0], item[1]))
    return [(group, row) for group, _, row in collected]


def builder_from_error(args: Any, error: ValidationError) -> FilterBuilder:
    """Rebuild the rows the user submitted and pin each error on its row."""
    raw = _raw_rows(args)
    builder = FilterBuilder(match=args.get("match") if args.get("match") in ("all", "any") else "all")
    for key, message in error.field_errors.items():
        found = _ERROR_KEY.match(key)
        if found and int(found.group(1)) < len(raw):
            raw[int(found.group(1))][1].error = message
        else:
            builder.error = error.message
    if not error.field_errors:
        builder.error = error.message
    groups: dict[int, BuilderGroup] = {}
    for group, row in raw:
        if group:
            match = args.get(f"g{group}")
            groups.setdefault(group, BuilderGroup([], match if match in ("all", "any") else "all")).rows.append(row)
        else:
            builder.rows.append(row)
    builder.groups = [groups[n] for n in sorted(groups)]
    return builder


def parse_filtered_list_query(filter_fields: Any) -> tuple[ListQuery, FilterBuilder]:
    """The list state plus the builder; an invalid filter is returned inline, never raised.

    Malformed page/per_page/sort/scope still raise BadRequest (400): those are not user typing.
    """
    try:
        query = parse_list_query(filter_fields)
    except ValidationError as error:
        query = parse_list_query(None)
        return query, builder_from_error(request.args, error)
    return query, builder_from_spec(query.filter_spec)


def parse_export_query(filter_fields: Any) -> ListQuery:
    """The list state for a CSV export: there is no page to show an invalid filter on, so it is a 400
    naming each bad condition."""
    query, builder = parse_filtered_list_query(filter_fields)
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
    from crm_web.filters.spec import describe_fields

    described = describe_fields(fields)
    extra = dict(choices or {})
    for entry in described:
        options = tags if entry["type"] == "tag" else extra.get(entry["name"])
        if options:
            entry["choices"] = [{"value": str(value), "label": label} for value, label in options]
    return described


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

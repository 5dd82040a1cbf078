"""The column chooser: which columns each list can show, the defaults, and the choice in force.

A list's columns are its built-in ones (fields of the record and what the list already loads with
it: company, owner, stage, pipeline, counts) plus the organisation's custom fields (`cf_<key>`). None
costs a statement: a cell reads the row the page already loaded (templates/components/*_row.html).

The visible columns and their order are the `cols` query parameter (comma-separated keys), so a
list URL, and a saved view storing it, carries them. Without `cols`, the user's stored choice for
the list (users.list_columns, loaded with the user) applies, else the defaults. Unknown keys (a
custom field deleted since) are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_web.custom_fields import CustomField, display, live_fields

MAX_COLUMNS = 40


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort: str | None = None  # the list's sort key, when the column sorts
    css: str = ""
    default: bool = True
    csv: str | None = None  # the header of the entity's CSV column exporting it
    custom: CustomField | None = None

    @property
    def header(self) -> tuple[str | None, str, str]:
        """(sort key, label, class): what components/list_page.list_table renders."""
        return (self.sort, self.label, self.css)


def _c(key: str, label: str, sort: str | None = None, css: str = "", *, default: bool = True, csv: Any = "") -> Column:
    return Column(key, label, sort, css, default, label if csv == "" else csv)


BUILT_IN: dict[str, tuple[Column, ...]] = {
    "contact": (
        _c("name", "Name", "name", csv=None),
        _c("email", "Email", "email"),
        _c("company", "Company", "company"),
        _c("tags", "Tags"),
        _c("owner", "Owner", "owner"),
        _c("status", "Status", "status"),
        _c("deals", "Deals", "deals", "num"),
        _c("activities", "Activities", "activities", "num"),
        _c("last_activity", "Last activity", "last_activity"),
        _c("phone", "Phone", default=False),
        _c("title", "Title", default=False),
        _c("city", "City", default=False, csv=None),
        _c("country", "Country", default=False, csv=None),
        _c("created", "Created", "created_at", default=False, csv=None),
    ),
    "company": (
        _c("name", "Name", "name"),
        _c("industry", "Industry", "industry"),
        _c("city", "City", "city"),
        _c("size", "Size", "size"),
        _c("tags", "Tags", csv=None),
        _c("owner", "Owner"),
        _c("contacts", "Contacts", "contacts", "num"),
        _c("open_value", "Open deals", "open_value", "num", csv=None),
        _c("website", "Website", default=False),
        _c("email", "Email", default=False),
        _c("phone", "Phone", default=False),
        _c("employees", "Employees", css="num", default=False),
        _c("revenue", "Annual revenue", css="num", default=False),
        _c("country", "Country", default=False),
        _c("created", "Created", "created_at", default=False),
    ),
    "lead": (
        _c("name", "Name", "name", csv=None),
        _c("company", "Company", "company"),
        _c("email", "Email"),
        _c("status", "Status", "status"),
        _c("score", "Score", "score", "num"),
        _c("value", "Est. value", "value", "num", csv="Estimated value"),
        _c("source", "Source", "source"),
        _c("tags", "Tags", csv=None),
        _c("owner", "Owner"),
        _c("created", "Created", "created_at"),
        _c("phone", "Phone", default=False),
        _c("title", "Title", default=False),
        _c("website", "Website", default=False),
    ),
    "deal": (
        _c("name", "Name", "name"),
        _c("value", "Value", "value", "num"),
        _c("stage", "Stage"),
        _c("days_in_stage", "Days in stage", css="num", csv=None),
        _c("status", "Status", "status"),
        _c("company", "Company"),
        _c("owner", "Owner"),
        _c("expected_close", "Expected close", "expected_close_date"),
        _c("tags", "Tags"),
        _c("pipeline", "Pipeline", default=False),
        _c("contact", "Contact", default=False),
        _c("probability", "Probability", "probability", "num", default=False),
        _c("currency", "Currency", default=False),
        _c("created", "Created", "created_at", default=False),
    ),
    "activity": (
        _c("subject", "Subject", "subject", csv=None),
        _c("related", "Related to", csv=None),
        _c("due", "Due", "due", csv=None),
        _c("status", "Status", "status", csv=None),
        _c("priority", "Priority", "priority", csv=None),
        _c("owner", "Owner", csv=None),
        _c("type", "Type", default=False, csv=None),
        _c("duration", "Duration (min)", css="num", default=False, csv=None),
        _c("completed", "Completed", default=False, csv=None),
    ),
}


def available(list_name: str, schema: Mapping[str, Any] | None) -> list[Column]:
    """Every column the list can show: built-in, then the organisation's custom fields."""
    custom = [
        Column(cf.name, cf.label, cf.name, "num" if cf.type in ("number", "money") else "", False, None, cf)
        for cf in live_fields(schema, list_name)
    ]
    return [*BUILT_IN.get(list_name, ()), *custom]


def defaults(columns: Sequence[Column]) -> list[Column]:
    return [c for c in columns if c.default]


def parse_keys(raw: str | None) -> list[str]:
    return [k for k in dict.fromkeys(part.strip() for part in (raw or "").split(",")) if k][:MAX_COLUMNS]


def visible(list_name: str, schema: Mapping[str, Any] | None, cols: str | None, stored: Any) -> list[Column]:
    """The columns in force: `cols` from the URL, else the user's stored choice, else the defaults; the
    first built-in column (the name, which links to the record) always first."""
    every = available(list_name, schema)
    by_key = {c.key: c for c in every}
    keys = parse_keys(cols) if cols else [str(k) for k in (stored or {}).get(list_name) or []]
    chosen = [by_key[k] for k in keys if k in by_key]
    if not chosen:
        chosen = defaults(every)
    first = every[0] if every else None
    if first is not None and chosen[0].key != first.key:
        chosen = [first, *(c for c in chosen if c.key != first.key)]
    return chosen


def is_default(list_name: str, schema: Mapping[str, Any] | None, columns: Sequence[Column]) -> bool:
    return [c.key for c in columns] == [c.key for c in defaults(available(list_name, schema))]


def csv_plan(entity: Any, columns: Sequence[Column] | None, custom: Sequence[CustomField]) -> list[tuple[str, Any]]:
    """(header, getter of an export row) per exported column: the visible ones that export, in order,
    or (`columns` None: "all columns") every registry column then every custom field."""
    registry = {c.header: c for c in entity.csv}
    plan: list[tuple[str, Any]] = []

    def record(row: Any) -> Any:
        return getattr(row, entity.name, row)

    def custom_getter(cf: CustomField) -> Any:
        return lambda row, users: display(cf, (record(row).custom or {}).get(cf.key), users)

    if columns is None:
        plan = [(c.header, (lambda row, users, c=c: c.export(row))) for c in entity.csv]
        plan += [(cf.label, custom_getter(cf)) for cf in custom]
        return plan
    for column in columns:
        if column.custom is not None:
            plan.append((column.label, custom_getter(column.custom)))
            continue
        header = column.csv
        if column.key == "name" and header is None:
            first, last = registry.get("First name"), registry.get("Last name")
            if first is not None and last is not None:
                plan += [
                    ("First name", lambda row, users, c=first: c.export(row)),
                    ("Last name", lambda row, users, c=last: c.export(row)),
                ]
            continue
        found = registry.get(header or "")
        if found is not None:
            plan.append((found.header, lambda row, users, c=found: c.export(row)))
    return plan

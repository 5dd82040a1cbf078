"""Streamed CSV downloads: rows are written as they are fetched, never built in memory.

`csv_response(filename, header, rows)` wraps a row iterator (e.g. a service generator over
`yield_per` batches) in `stream_with_context`, so the database session and request context
stay alive while the body streams. The export's transaction runs on the long database limits
(DB_LONG_*, crm_web/database.py), not a page's: it may stream for minutes to a slow client.
Quoting is the csv module's; text cells that a spreadsheet would run as a formula (starting with
=, +, -, @, tab or CR) are prefixed with an apostrophe, unless they are only digits and the signs of
a phone number or an amount (+1-555-0100, -42.50): a spreadsheet may read those as a number, but
they call nothing. Dates and times are written as spreadsheets read them (no microseconds).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from flask import Response, stream_with_context

from crm_web.formatting import spreadsheet_value

if TYPE_CHECKING:
    from crm_web.entities import Entity

BOM = "\ufeff"  # lets Excel detect UTF-8
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# Digits, spaces and the punctuation of phone numbers and amounts: no function, no reference.
INERT = re.compile(r"[+-]?[\d\s().,/+-]*\d[\d\s().,/+-]*")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, date):
        return spreadsheet_value(value)
    if isinstance(value, str) and value.startswith(FORMULA_START) and not INERT.fullmatch(value):
        return "'" + value
    return value


def iter_csv(header: Sequence[str], rows: Iterable[Sequence[Any]], *, bom: bool = True) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield (BOM if bom else "") + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(v) for v in row])
        yield buffer.getvalue()


def _on_long_limits(lines: Iterator[str]) -> Iterator[str]:
    from crm_web.database import use_long_limits
    from crm_web.extensions import db

    use_long_limits(db.session)  # before the rows' first statement
    yield from lines


def csv_response(
    basename: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *, day: date, bom: bool = True
) -> Response:
    """A streamed text/csv attachment named `<basename>-<YYYY-MM-DD>.csv` (`day`: the organisation's today)."""
    filename = f"{basename}-{day.isoformat()}.csv"
    body = _on_long_limits(iter_csv(header, rows, bom=bom))
    response = Response(stream_with_context(body), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def entity_csv_response(entity: Entity, rows: Iterable[Any], *, day: date, currency: str = "") -> Response:
    """An entity's export: its registry columns over the rows its service's `export_rows` yields;
    `currency` is the organisation's, which its converted sums are stated in."""
    return csv_response(entity.plural, entity.csv_header(currency), (entity.csv_values(row) for row in rows), day=day)


def planned_csv_response(
    entity: Entity,
    rows: Iterable[Any],
    plan: Sequence[tuple[str, Any]],
    users: Mapping[str, str],
    *,
    day: date,
    currency: str = "",
) -> Response:
    """An export of chosen columns (crm_web/columns.csv_plan: the visible ones, or every one with the
    custom fields); `users` names the users a custom field of type user holds."""
    header = [name.replace("{currency}", currency) for name, _ in plan]
    return csv_response(entity.plural, header, ([get(row, users) for _, get in plan] for row in rows), day=day)

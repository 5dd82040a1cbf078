"""Safe parsing of query-string parameters: bad input is a 400 with a readable message, never a 500."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, overload

from flask import request

from crm_web.errors import BadRequest

MAX_PARAM_LENGTH = 200


def is_whole_number(text: str, max_digits: int = 18, *, signed: bool = False) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" or "١", which int() then refuses (a 500)."""
    return re.fullmatch(("-?" if signed else "") + f"[0-9]{{1,{max_digits}}}", text) is not None


@overload
def get_int_param(
    name: str,
    default: int,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
    args: Mapping[str, Any] | None = None,
) -> int: ...


@overload
def get_int_param(
    name: str,
    default: None = None,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
    args: Mapping[str, Any] | None = None,
) -> int | None: ...


def get_int_param(
    name: str,
    default: int | None = None,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
    args: Mapping[str, Any] | None = None,
) -> int | None:
    """An integer from the query string (or `args`); missing or empty gives `default`."""
    raw = (request.args if args is None else args).get(name, "").strip()
    if raw == "":
        return default
    if not is_whole_number(raw, signed=True):
        raise BadRequest(f"Parameter {name!r} must be a whole number, not {raw[:40]!r}.")
    value = int(raw)
    if min_value is not None and value < min_value:
        raise BadRequest(f"Parameter {name!r} must be at least {min_value}.")
    if max_value is not None and value > max_value:
        raise BadRequest(f"Parameter {name!r} must be at most {max_value}.")
    return value


def parse_uuid(raw: str | None, name: str = "id") -> uuid.UUID | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        return uuid.UUID(raw.strip())
    except (ValueError, AttributeError):
        raise BadRequest(f"Parameter {name!r} is not a valid id.") from None


def get_uuid_param(name: str) -> uuid.UUID | None:
    """A UUID from the query string (or None when absent)."""
    return parse_uuid(request.args.get(name), name)


def get_uuid_list(name: str, source: str = "form", limit: int = 1000) -> list[uuid.UUID]:
    """Many UUIDs (e.g. selected rows of a bulk action) from the form or the query string."""
    values: Iterable[str] = (request.form if source == "form" else request.args).getlist(name)
    ids = [parse_uuid(value, name) for value in values if value.strip()]
    if len(ids) > limit:
        raise BadRequest(f"At most {limit} records at once.")
    return [i for i in ids if i is not None]


@overload
def get_choice_param(
    name: str, choices: Iterable[str], default: str, *, args: Mapping[str, Any] | None = None
) -> str: ...


@overload
def get_choice_param(
    name: str, choices: Iterable[str], default: None = None, *, args: Mapping[str, Any] | None = None
) -> str | None: ...


def get_choice_param(
    name: str, choices: Iterable[str], default: str | None = None, *, args: Mapping[str, Any] | None = None
) -> str | None:
    raw = (request.args if args is None else args).get(name, "").strip()
    if raw == "":
        return default
    allowed = list(choices)
    if raw not in allowed:
        raise BadRequest(f"Parameter {name!r} must be one of: {', '.join(allowed)}.")
    return raw


def get_text_param(
    name: str, default: str = "", max_length: int = MAX_PARAM_LENGTH, *, args: Mapping[str, Any] | None = None
) -> str:
    raw = (request.args if args is None else args).get(name, default).strip()
    if len(raw) > max_length:
        raise BadRequest(f"Parameter {name!r} is too long (at most {max_length} characters).")
    return raw

"""`flask crm import`: the browser's code path from the command line, one summary line at the end."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, NoReturn

from sqlalchemy import select

from crm_web.errors import CRMException
from crm_web.extensions import db
from crm_web.imports.fields import spec_for
from crm_web.imports.reading import CsvReader, UnreadableFile
from crm_web.imports.service import ImportService, Options, _errors_path_for
from crm_web.models import Role, User
from crm_web.services.base import Actor


def _mapping(path: str, entity: str, mapping_arg: str, fail: Callable[[str], NoReturn]) -> list[str] | None:
    """None for "auto"; else the JSON file's mapping: a list (one field per column) or an object
    (header -> field, unnamed headers ignored)."""
    if mapping_arg == "auto":
        return None
    try:
        with open(mapping_arg, encoding="utf-8") as f:
            given: Any = json.load(f)
    except (OSError, ValueError) as error:
        fail(f"Cannot read the mapping {mapping_arg}: {error}")
    if isinstance(given, list):
        return [str(x or "") for x in given]
    if isinstance(given, dict):
        with CsvReader(path) as reader:
            return [str(given.get(h) or "") for h in reader.header]
    fail("A mapping file holds a list of fields (one per column) or an object {header: field}.")


def import_file(
    *,
    org_slug: str,
    entity: str,
    path: str,
    mapping_arg: str,
    on_duplicate: str,
    dry_run: bool,
    as_email: str | None,
    create_companies: bool,
    echo: Callable[[str], Any],
    fail: Callable[[str], NoReturn],
) -> None:
    from crm_web.database import use_long_limits, use_org
    from crm_web.services import accounts

    org = accounts.org_by_slug(org_slug)
    if org is None:
        fail(f"No organisation with slug {org_slug!r}.")
    users = select(User).where(User.org_id == org.id, User.active.is_(True))
    if as_email:
        user = db.session.scalar(users.where(User.email == as_email.strip().lower()))
        if user is None:
            fail(f"No active user {as_email!r} in {org_slug}.")
    else:
        user = db.session.scalar(users.where(User.role == Role.ADMIN.value).order_by(User.created_at))
        if user is None:
            fail(f"{org_slug} has no active admin: name a user with --as.")
    use_org(db.session(), org.id)
    use_long_limits(db.session)
    actor = Actor(org_id=org.id, user_id=user.id, role=Role(user.role), name=user.name)
    service = ImportService(actor)
    spec = spec_for(entity)
    mapping = _mapping(path, entity, mapping_arg, fail)
    options = Options(on_duplicate=on_duplicate, create_companies=create_companies)
    errors_path = _errors_path_for(path)
    if os.path.exists(errors_path):
        os.remove(errors_path)
    try:
        if dry_run:
            outcome = service.dry_run(path, spec.name, mapping=mapping, options=options, errors_path=errors_path)
            suffix = " (dry run: nothing was written)"
        else:
            job = service.create_import(
                path, spec.name, file_name=os.path.basename(path), mapping=mapping, options=options
            )
            outcome = service.run(job.id, errors_path=errors_path)
            suffix = f" (import {job.id})"
    except UnreadableFile as error:
        fail(str(error))
    except CRMException as error:
        fail(error.message)
    if outcome.errors_path:
        echo(f"Rows not imported, with the reason: {outcome.errors_path}")
    echo(outcome.summary() + suffix)

"""`flask --app wsgi crm ...`: demo data, bulk seeding, user set-up. Errors are one line, exit 1."""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_migrate import upgrade

from crm_web.errors import CRMException

crm = AppGroup("crm", help="crm-web administration commands.")


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


@crm.command("demo")
@click.option("--no-migrate", is_flag=True, help="Skip `db upgrade` (the schema already exists).")
@click.option(
    "--url", default="http://127.0.0.1:5000", show_default=True, help="Where the app is served (printed only)."
)
def demo_command(no_migrate: bool, url: str) -> None:
    """Upgrade the database and create (once) a demo organisation with realistic data."""
    from crm_web.services import seeding

    _require_generator()
    if not no_migrate:
        upgrade()
    org, created = seeding.ensure_demo_org()
    if created:
        seeding.Seeder(org, seed=7).run(companies=40, contacts=150, leads=60, deals=80, activities=200)
        click.echo(f"Created the demo organisation {org.name!r}.")
    else:
        click.echo(f"The demo organisation {org.name!r} already exists; left as it is.")
    click.echo(f"Open {url} and sign in as one of:")
    for email, _, role in seeding.DEMO_USERS:
        click.echo(f"  {email:<22} password: {seeding.DEMO_PASSWORD}   ({role})")


def _require_generator() -> None:
    from crm_web.services import seeding

    try:
        seeding.require_generator()
    except seeding.GeneratorMissing as error:
        _fail(str(error))


def _non_negative(ctx, param, value: int) -> int:
    if value < 0:
        raise click.BadParameter("must be zero or more")
    return value


@crm.command("seed")
@click.option("--org", "org_slug", required=True, help="Slug of an existing organisation.")
@click.option("--companies", default=0, callback=_non_negative, show_default=True)
@click.option("--contacts", default=0, callback=_non_negative, show_default=True)
@click.option("--leads", default=0, callback=_non_negative, show_default=True)
@click.option("--deals", default=0, callback=_non_negative, show_default=True)
@click.option("--activities", default=0, callback=_non_negative, show_default=True)
@click.option("--random-seed", default=42, show_default=True)
def seed_command(
    org_slug: str, companies: int, contacts: int, leads: int, deals: int, activities: int, random_seed: int
) -> None:
    """Bulk volume for benchmarks, inserted in batches."""
    from crm_web.services import accounts, seeding

    _require_generator()
    org = accounts.org_by_slug(org_slug)
    if org is None:
        _fail(f"No organisation with slug {org_slug!r} (create one with `crm create-user`).")
    total = companies + contacts + leads + deals + activities
    with click.progressbar(length=max(total, 1), label="Seeding", file=None) as bar:
        counts = seeding.Seeder(org, seed=random_seed, progress=lambda label, n: bar.update(n)).run(
            companies=companies, contacts=contacts, leads=leads, deals=deals, activities=activities
        )
    click.echo("Inserted " + ", ".join(f"{n} {name}" for name, n in counts.items()) + f" into {org_slug}.")


@crm.command("create-user")
@click.option("--org", "org_slug", required=True, help="Organisation slug; created if it does not exist.")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "manager", "sales"]))
@click.option("--name", default=None)
def create_user_command(org_slug: str, email: str, password: str, role: str, name: str | None) -> None:
    """Create a user (and the organisation, for a new customer)."""
    from crm_web.services import accounts

    try:
        user = accounts.create_user(org_slug=org_slug, email=email, password=password, role=role, name=name)
    except CRMException as error:
        _fail(error.message)
    click.echo(f"Created {user.role} {user.email} in organisation {org_slug}.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(crm)


@crm.command("purge-trash")
@click.option(
    "--older-than-days",
    "days_text",
    default=None,
    metavar="N",
    help="Purge what has been in the trash longer than N days [default: each organisation's retention "
    "setting, else TRASH_RETENTION_DAYS, 30].",
)
@click.option("--dry-run", is_flag=True, help="List what would be purged; delete nothing.")
@click.option("--org", "org_slug", default=None, help="Only this organisation (default: all).")
def purge_trash_command(days_text: str | None, dry_run: bool, org_slug: str | None) -> None:
    """Retention: permanently delete old trash and report the counts per type."""
    from crm_web.services.trash import TRASH_TYPES, PurgeResult, purge_expired

    # Parsed by hand so a bad value is one line, like every other error here.
    default_days = int(current_app.config.get("TRASH_RETENTION_DAYS", 30))
    days: int | None = None  # each organisation's own retention, else the default
    if days_text is not None:
        if not days_text.strip().isdigit():
            _fail(f"--older-than-days must be a whole number of days (0 or more), not {days_text!r}.")
        days = int(days_text)
    try:
        results = purge_expired(days=days, dry_run=dry_run, org_slug=org_slug, default_days=default_days)
    except CRMException as error:
        _fail(error.message)
    total = PurgeResult(counts={t: sum(r.counts[t] for r in results.values()) for t in TRASH_TYPES}, items=[])
    verb = "Would purge" if dry_run else "Purged"
    if dry_run:
        for slug, result in results.items():
            for item in result.items:
                click.echo(
                    f"  {slug}  {item.entity_type:<8} {item.id}  deleted {item.deleted_at:%Y-%m-%d %H:%M}"
                    f"  {item.display_label}"
                )
    if days is None:
        from sqlalchemy import select

        from crm_web.extensions import db
        from crm_web.models import Organization

        own = db.session.execute(
            select(Organization.slug, Organization.trash_retention_days)
            .where(Organization.trash_retention_days.is_not(None), Organization.slug.in_(list(results)))
            .order_by(Organization.slug)
        ).all()
        for slug, org_days in own:
            click.echo(f"  {slug} keeps its trash {org_days} day(s) (its own setting).")
    shown = days if days is not None else default_days
    click.echo(f"{verb} {total.total} record(s) deleted more than {shown} day(s) ago: {total.summary()}.")
    from crm_web.services.tags import purge_trashed_tags

    tags = purge_trashed_tags(days=days, default_days=default_days, org_slug=org_slug, dry_run=dry_run)
    if tags:
        click.echo(f"{verb} {tags} deleted tag(s) as well.")


@crm.command("custom-field-indexes")
def custom_field_indexes_command() -> None:
    """Create the missing index (and statistics) of every live custom field (PostgreSQL).

    The web app creates a field's index when the field is defined, unless its role may not (it does
    not own the tables): run this as the tables' owner (the role that ran `db upgrade`)."""
    from crm_web.extensions import db
    from crm_web.services.custom_fields import ensure_indexes

    if db.engine.dialect.name != "postgresql":
        click.echo("Nothing to do: custom field indexes exist on PostgreSQL only.")
        return
    checked, failed = ensure_indexes()
    if failed:
        _fail(
            f"{failed} of {checked} custom field index(es) could not be created (see the log): "
            "run this as the tables' owner."
        )
    click.echo(f"Every custom field has its index ({checked} field(s)).")


@crm.command("web-role")
@click.option("--name", default="crm_web", show_default=True, help="The role the web app connects as.")
@click.option("--password-env", default=None, metavar="VAR", help="Set the role's password from this variable.")
@click.option("--print-url", is_flag=True, help="Print only the role's DATABASE_URL (for scripts).")
def web_role_command(name: str, password_env: str | None, print_url: bool) -> None:
    """Create (once) and grant the plain PostgreSQL role the web app must connect as.

    Run it as the tables' owner (the role that ran `db upgrade`) after every upgrade."""
    import os

    from crm_web.services.db_roles import ensure_web_role

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            _fail(f"{password_env} is not set.")
    try:
        role = ensure_web_role(name=name, password=password)
    except CRMException as error:
        _fail(error.message)
    if print_url:
        click.echo(role.url)
        return
    click.echo(f"{'Created' if role.created else 'Updated'} the web role {role.name}; serve the app with")
    click.echo(f"  DATABASE_URL={role.url}")
    if not role.leakproof:
        click.echo("Not a superuser: ask one to mark the search and custom field functions LEAKPROOF")
        click.echo("(docs/security.md, the web role's SQL).")


@crm.command("move-to-postgres")
@click.option("--from", "source_url", required=True, metavar="URL", help="The SQLite database, sqlite:///path.")
@click.option("--to", "target_url", required=True, metavar="URL", help="PostgreSQL as the schema's owner.")
@click.option("--org", "org_slugs", multiple=True, metavar="SLUG", help="Only this organisation (repeatable).")
def move_to_postgres_command(source_url: str, target_url: str, org_slugs: tuple[str, ...]) -> None:
    """Copy organisations (every one without --org) from SQLite into PostgreSQL.

    Migrate both first (`flask db upgrade` with each DATABASE_URL). Each organisation is copied in one
    transaction; one that the target already has is refused. The SQLite file is only read."""
    from crm_web.moving import move_organisations, open_engines

    try:
        source, target = open_engines(source_url, target_url)
        try:
            reports = move_organisations(source, target, list(org_slugs) or None)
        finally:
            source.dispose()
            target.dispose()
    except CRMException as error:
        _fail(error.message)
    for report in reports:
        tables = ", ".join(f"{name} {count}" for name, count in report.rows.items() if count)
        click.echo(f"Moved {report.org_slug}: {report.total} rows ({tables}).")
    if not reports:
        click.echo("The source has no organisation.")


api_token = AppGroup("api-token", help="Tokens of the internal service API (/internal/*).")
crm.add_command(api_token)


def _parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `7d`: a whole number and a unit."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    value, unit = text[:-1], text[-1:].lower()
    if unit not in units or not value.isdigit():
        _fail(f"A duration is a whole number and m, h or d (e.g. 24h), not {text!r}.")
    return timedelta(**{units[unit]: int(value)})


def _print_issued(issued) -> None:
    click.echo(f"Token {issued.token.name} ({issued.token.prefix}...), scopes {', '.join(issued.token.scopes)}.")
    click.echo("The secret (shown once, stored only as a hash):")
    click.echo(f"  {issued.secret}")


@api_token.command("create")
@click.option("--name", required=True, help="Who uses it (e.g. billing); rotation and revocation go by name.")
@click.option("--scope", "scopes", multiple=True, required=True, help="stats:read and/or usage:write.")
@click.option("--org", "org_slugs", multiple=True, help="An organisation it may act for (repeat for more).")
@click.option("--all-orgs", is_flag=True, help="It may act for every organisation, present and future.")
@click.option("--expires-in", default=None, metavar="DURATION", help="e.g. 90d (default: until rotated or revoked).")
@click.option(
    "--from-env",
    default=None,
    metavar="VAR",
    help="Import the secret from this variable (migrating CRM_INTERNAL_TOKEN) instead of generating one.",
)
def api_token_create(
    name: str, scopes: tuple[str, ...], org_slugs: tuple[str, ...], all_orgs: bool, expires_in: str | None, from_env
) -> None:
    """Create a token; prints its secret once."""
    from crm_web.models import utcnow
    from crm_web.services import api_tokens

    try:
        issued = api_tokens.create(
            name=name,
            scopes=list(scopes),
            org_slugs=list(org_slugs),
            all_orgs=all_orgs,
            expires_at=utcnow() + _parse_duration(expires_in) if expires_in else None,
            secret=api_tokens.secret_from_env(from_env) if from_env else None,
        )
    except CRMException as error:
        _fail(error.message)
    if from_env:
        click.echo(f"Imported {from_env} as token {issued.token.name} ({issued.token.prefix}...); unset it now.")
    else:
        _print_issued(issued)


@api_token.command("rotate")
@click.option("--name", required=True)
@click.option("--overlap", default="24h", show_default=True, help="How long the old token keeps working.")
def api_token_rotate(name: str, overlap: str) -> None:
    """A new token with the same rights; the old one works for the overlap, then expires."""
    from crm_web.services import api_tokens

    try:
        issued = api_tokens.rotate(name=name, overlap=_parse_duration(overlap))
    except CRMException as error:
        _fail(error.message)
    _print_issued(issued)
    click.echo(f"The previous token of {name} stops working in {overlap}.")


@api_token.command("revoke")
@click.option("--name", required=True)
def api_token_revoke(name: str) -> None:
    """End every token of that name now."""
    from crm_web.services import api_tokens

    click.echo(f"Revoked {api_tokens.revoke(name=name)} token(s) named {name}.")


@api_token.command("list")
def api_token_list() -> None:
    """Every token: name, prefix, scopes, organisations, state."""
    from crm_web.models import utcnow
    from crm_web.services import api_tokens

    now = utcnow()
    for token in api_tokens.listing():
        state = "revoked" if token.revoked_at else "expired" if not token.usable(now) else "active"
        if token.expires_at and state == "active":
            state += f" until {token.expires_at:%Y-%m-%d %H:%M} UTC"
        orgs = "all organisations" if token.all_orgs else f"{len(token.org_ids)} organisation(s)"
        click.echo(f"{token.name:<16} {token.prefix}...  {','.join(token.scopes):<24} {orgs:<20} {state}")


@crm.command("import")
@click.option("--org", "org_slug", required=True, help="Slug of the organisation to import into.")
@click.option("--entity", required=True, type=click.Choice(["contacts", "companies", "leads", "deals", "activities"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", "mapping_arg", default="auto", show_default=True, help="auto, or a JSON file.")
@click.option("--on-duplicate", type=click.Choice(["skip", "update", "create"]), default="skip", show_default=True)
@click.option("--dry-run", is_flag=True, help="Validate every row and count; write nothing.")
@click.option("--as", "as_email", default=None, help="Import as this user (default: the org's first admin).")
@click.option("--no-create-companies", is_flag=True, help="A company named but missing is an error.")
def import_command(
    org_slug: str,
    entity: str,
    file: str,
    mapping_arg: str,
    on_duplicate: str,
    dry_run: bool,
    as_email: str | None,
    no_create_companies: bool,
) -> None:
    """Import a CSV file (the browser's code path); errors go to FILE.errors.csv. Exit 1 when the file
    cannot be read or no column maps to a field."""
    from crm_web.imports import cli_support

    cli_support.import_file(
        org_slug=org_slug,
        entity=entity,
        path=file,
        mapping_arg=mapping_arg,
        on_duplicate=on_duplicate,
        dry_run=dry_run,
        as_email=as_email,
        create_companies=not no_create_companies,
        echo=click.echo,
        fail=_fail,
    )


@crm.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker_command(burst: bool) -> None:
    """Run background jobs (CSV imports) from the app's Redis (REDIS_URL)."""
    from crm_web.imports import jobs

    if not current_app.config.get("REDIS_URL"):
        _fail("REDIS_URL is not set: without Redis, imports run in a thread of the app and need no worker.")
    jobs.work(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]

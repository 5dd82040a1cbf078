"""`flask --app wsgi crm ...`: demo data, bulk seeding, user set-up. Errors are one line, exit 1."""

from __future__ import annotations

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
def demo_command(no_migrate: bool) -> None:
    """Upgrade the database and create (once) a demo organisation with realistic data."""
    from crm_web.services import seeding

    if not no_migrate:
        upgrade()
    org, created = seeding.ensure_demo_org()
    if created:
        seeding.Seeder(org, seed=7).run(companies=40, contacts=150, leads=60, deals=80, activities=200)
        click.echo(f"Created the demo organisation {org.name!r}.")
    else:
        click.echo(f"The demo organisation {org.name!r} already exists; left as it is.")
    click.echo("Open http://127.0.0.1:5000 and sign in as one of:")
    for email, _, role in seeding.DEMO_USERS:
        click.echo(f"  {email:<22} password: {seeding.DEMO_PASSWORD}   ({role})")


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
    help="Purge what has been in the trash longer than N days [default: TRASH_RETENTION_DAYS, 30].",
)
@click.option("--dry-run", is_flag=True, help="List what would be purged; delete nothing.")
@click.option("--org", "org_slug", default=None, help="Only this organisation (default: all).")
def purge_trash_command(days_text: str | None, dry_run: bool, org_slug: str | None) -> None:
    """Retention: permanently delete old trash and report the counts per type."""
    from crm_web.services.trash import TRASH_TYPES, PurgeResult, purge_expired

    # Parsed by hand so a bad value is one line, like every other error here.
    if days_text is None:
        days = int(current_app.config.get("TRASH_RETENTION_DAYS", 30))
    elif days_text.strip().isdigit():
        days = int(days_text)
    else:
        _fail(f"--older-than-days must be a whole number of days (0 or more), not {days_text!r}.")
    try:
        results = purge_expired(days=days, dry_run=dry_run, org_slug=org_slug)
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
    click.echo(f"{verb} {total.total} record(s) deleted more than {days} day(s) ago: {total.summary()}.")

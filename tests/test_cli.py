"""The `crm` commands: demo, seed, create-user. Bad arguments give one line and a non-zero exit."""

import pytest
from sqlalchemy import func, select, text

from crm_web.extensions import db
from crm_web.models import Activity, Company, Contact, Deal, Lead, Organization, Pipeline, PipelineStage, User


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def count(model, org_id):
    return db.session.scalar(select(func.count()).select_from(model).where(model.org_id == org_id))


def test_demo_creates_the_demo_org_once(cli):
    first = cli.invoke(args=["crm", "demo", "--no-migrate"])
    assert first.exit_code == 0, first.output
    assert "admin@example.com" in first.output and "password: demo" in first.output
    org = db.session.scalar(select(Organization).where(Organization.slug == "demo"))
    contacts = count(Contact, org.id)
    assert contacts > 0 and count(Company, org.id) > 0 and count(Deal, org.id) > 0 and count(Lead, org.id) > 0
    assert count(Pipeline, org.id) == 2
    assert {u.email for u in db.session.scalars(select(User).where(User.org_id == org.id))} == {
        "admin@example.com",
        "manager@example.com",
        "sales@example.com",
    }

    second = cli.invoke(args=["crm", "demo", "--no-migrate"])
    assert second.exit_code == 0 and "already exists" in second.output
    assert count(Contact, org.id) == contacts


def test_demo_has_overdue_activities(cli):
    from crm_web.models import utcnow

    cli.invoke(args=["crm", "demo", "--no-migrate"])
    overdue = db.session.scalar(
        select(func.count())
        .select_from(Activity)
        .where(Activity.status.in_(("pending", "in_progress")), Activity.due_at < utcnow())
    )
    assert overdue > 0


def test_create_user_creates_the_org_and_seed_fills_it(cli):
    result = cli.invoke(
        args=[
            "crm",
            "create-user",
            "--org",
            "newco",
            "--email",
            "boss@newco.example",
            "--password",
            "tidal-lantern-42",
            "--role",
            "admin",
        ]
    )
    assert result.exit_code == 0, result.output
    org = db.session.scalar(select(Organization).where(Organization.slug == "newco"))
    assert org is not None
    # A new customer can work at once: a default pipeline with the starter stages.
    pipeline = db.session.scalar(select(Pipeline).where(Pipeline.org_id == org.id))
    assert pipeline is not None and pipeline.is_default
    stages = db.session.scalars(
        select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id).order_by(PipelineStage.position)
    ).all()
    assert [s.name for s in stages] == ["New", "Qualified", "Proposal", "Won", "Lost"]
    assert stages[-2].is_won and stages[-1].is_lost

    result = cli.invoke(
        args=[
            "crm",
            "seed",
            "--org",
            "newco",
            "--companies",
            "20",
            "--contacts",
            "50",
            "--leads",
            "10",
            "--deals",
            "30",
            "--activities",
            "40",
        ]
    )
    assert result.exit_code == 0, result.output
    assert (
        count(Company, org.id),
        count(Contact, org.id),
        count(Lead, org.id),
        count(Deal, org.id),
        count(Activity, org.id),
    ) == (20, 50, 10, 30, 40)


@pytest.mark.parametrize(
    "args,message",
    [
        (["crm", "seed", "--org", "missing", "--contacts", "5"], "No organisation with slug 'missing'"),
        (["crm", "seed", "--org", "x", "--contacts", "-5"], "must be zero or more"),
        (
            ["crm", "create-user", "--org", "acme", "--email", "a@b.example", "--password", "pw12", "--role", "king"],
            "Invalid value for '--role'",
        ),
        (
            [
                "crm",
                "create-user",
                "--org",
                "Bad Slug!",
                "--email",
                "a@b.example",
                "--password",
                "pw12",
                "--role",
                "sales",
            ],
            "slug",
        ),
    ],
)
def test_bad_arguments_fail_with_one_line(cli, args, message):
    result = cli.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_duplicate_email_is_refused(cli):
    args = [
        "crm",
        "create-user",
        "--org",
        "acme",
        "--email",
        "dup@acme.example",
        "--password",
        "tidal-lantern-42",
        "--role",
        "sales",
    ]
    assert cli.invoke(args=args).exit_code == 0
    result = cli.invoke(args=args)
    assert result.exit_code != 0 and "already exists" in result.output


def test_demo_prints_the_url_it_is_given(cli):
    result = cli.invoke(args=["crm", "demo", "--no-migrate", "--url", "http://127.0.0.1:8123"])
    assert result.exit_code == 0, result.output
    assert "Open http://127.0.0.1:8123 and sign in" in result.output
    assert "5000" not in result.output


def test_demo_and_seed_without_the_generator_say_what_to_install_and_write_nothing(cli, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faker", None)  # what `import faker` meets when it is not installed
    for args in (["crm", "demo", "--no-migrate"], ["crm", "seed", "--org", "demo", "--contacts", "1"]):
        result = cli.invoke(args=args)
        assert result.exit_code == 1
        assert "pip install -e '.[demo]'" in result.output
    assert db.session.scalar(select(Organization).where(Organization.slug == "demo")) is None


def test_a_command_prints_its_own_output_not_library_set_up_logs(tmp_path):
    """A real process, as a user runs it: the app configures logging there, not pytest."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "REDIS_URL": ""}
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    upgrade = subprocess.run([*flask, "db", "upgrade"], cwd=root, env=env, capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Running upgrade" in upgrade.stderr  # which migrations ran is worth a line each
    demo = subprocess.run([*flask, "crm", "demo", "--no-migrate"], cwd=root, env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""
    assert demo.stdout.splitlines()[0] == "Created the demo organisation 'Acme Demo'."
    assert len(demo.stdout.splitlines()) == 5  # that, the URL, one line per demo login


def test_web_role_makes_a_plain_role_and_refuses_a_privileged_one(cli, engine_name):
    """`crm web-role` (services/db_roles.py); its grants are proven in tests/test_tenant_isolation.py. On
    PostgreSQL the role, its grants and settings are made inside the test's transaction, rolled back."""
    import uuid as uuid_module

    name = f"crm_cli_web_{uuid_module.uuid4().hex[:8]}"
    result = cli.invoke(args=["crm", "web-role", "--name", name, "--print-url"])
    if engine_name == "sqlite":
        assert result.exit_code == 1 and "PostgreSQL only" in result.output
        return
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith(f"postgresql+psycopg://{name}@")
    flags = db.session.execute(
        text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :n"), {"n": name}
    ).one()
    assert tuple(flags) == (False, False, True)
    again = cli.invoke(args=["crm", "web-role", "--name", name])
    assert again.exit_code == 0 and "Updated the web role" in again.output
    for refused, message in (("postgres", "superuser"), ("bad name!", "letters, digits")):
        result = cli.invoke(args=["crm", "web-role", "--name", refused])
        assert result.exit_code == 1 and message in result.output, result.output


@pytest.mark.parametrize(
    "password,email,message",
    [
        ("short-pw", "a@acme.example", "at least 10 characters"),
        ("qwertyuiop", "a@acme.example", "most common passwords"),
        ("Password123", "a@acme.example", "most common passwords"),
        ("jane.doe-2026!", "jane.doe@acme.example", "email address"),
    ],
)
def test_create_user_applies_the_password_policy(cli, password, email, message):
    result = cli.invoke(
        args=["crm", "create-user", "--org", "acme", "--email", email, "--password", password, "--role", "sales"]
    )
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert db.session.scalar(select(User.id).where(User.email == email)) is None


def test_duplicate_email_is_refused_whatever_its_case(cli):
    base = ["crm", "create-user", "--org", "acme", "--password", "tidal-lantern-42", "--role", "sales", "--email"]
    assert cli.invoke(args=[*base, "Mixed.Case@acme.example"]).exit_code == 0
    result = cli.invoke(args=[*base, "mixed.case@ACME.example"])
    assert result.exit_code != 0 and "already exists" in result.output

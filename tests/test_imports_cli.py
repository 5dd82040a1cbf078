"""`flask crm import`: the summary line, the errors file next to the input, the exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_web.extensions import db
from crm_web.models import Contact, Import

DATA = Path(__file__).parent / "data" / "import"


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def copy(tmp_path, name):
    shutil.copy(DATA / name, tmp_path / name)
    return str(tmp_path / name)


def contacts(org):
    return db.session.scalar(select(func.count()).select_from(Contact).where(Contact.org_id == org.id))


def test_import_prints_one_summary_line_and_writes_errors_next_to_the_input(cli, org, users, tmp_path):
    path = copy(tmp_path, "invalid_values.csv")
    result = cli.invoke(args=["crm", "import", "--org", org.slug, "--entity", "contacts", path])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("created 3, updated 0, skipped 0, errors 8 (import ")
    errors = tmp_path / "invalid_values.errors.csv"
    assert errors.exists() and errors.read_text(encoding="utf-8-sig").splitlines()[0].endswith(",error")
    assert contacts(org) == 3
    assert db.session.scalar(select(Import.status).where(Import.org_id == org.id)) == "done"


def test_dry_run_writes_nothing(cli, org, users, tmp_path):
    path = copy(tmp_path, "contacts_utf16.csv")
    result = cli.invoke(args=["crm", "import", "--org", org.slug, "--entity", "contacts", "--dry-run", path])
    assert result.exit_code == 0, result.output
    assert "created 3, updated 0, skipped 0, errors 0" in result.output and contacts(org) == 0


def test_update_as_a_named_user_with_a_mapping_file(cli, org, users, tmp_path):
    path = copy(tmp_path, "duplicates.csv")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"First name": "first_name", "Email": "email"}))
    args = ["crm", "import", "--org", org.slug, "--entity", "contacts", "--mapping", str(mapping)]
    first = cli.invoke(args=[*args, "--as", users["manager"].email, path])
    assert first.exit_code == 0, first.output
    assert "created 2, updated 0, skipped 1, errors 0" in first.output
    second = cli.invoke(args=[*args, "--on-duplicate", "update", path])
    assert "created 0, updated 2, skipped 1, errors 0" in second.output
    owners = set(db.session.scalars(select(Contact.owner_id).where(Contact.org_id == org.id)))
    assert owners == {users["manager"].id}


@pytest.mark.parametrize(
    ("name", "message"),
    [("empty.csv", "empty"), ("binary.csv", "not a text file")],
)
def test_unreadable_files_exit_1(cli, org, users, tmp_path, name, message):
    result = cli.invoke(args=["crm", "import", "--org", org.slug, "--entity", "contacts", copy(tmp_path, name)])
    assert result.exit_code == 1 and message in result.output


def test_nothing_mapped_exits_1(cli, org, users, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Foo,Bar\n1,2\n")
    result = cli.invoke(args=["crm", "import", "--org", org.slug, "--entity", "contacts", str(path)])
    assert result.exit_code == 1 and "No column" in result.output
    assert db.session.scalar(select(func.count()).select_from(Import).where(Import.org_id == org.id)) == 0


def test_unknown_org_exits_1(cli, tmp_path):
    result = cli.invoke(args=["crm", "import", "--org", "nope", "--entity", "contacts", copy(tmp_path, "empty.csv")])
    assert result.exit_code == 1 and "No organisation" in result.output

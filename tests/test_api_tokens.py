"""Internal API tokens (services/api_tokens.py): stored hashed, scoped to endpoints and organisations,
rotated with an overlap, revocable, rate limited; managed with `flask crm api-token`."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from crm_web.extensions import db
from crm_web.models import ApiToken, utcnow
from crm_web.services import api_tokens
from tests import factories
from tests.conftest import CSRFClient, base_config


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _stats(client, org, secret: str):
    return client.get(f"/internal/orgs/{org.id}/stats", headers=_bearer(secret))


def _usage(client, org, secret: str):
    return client.post(f"/internal/orgs/{org.id}/usage", headers=_bearer(secret), csrf=False)


def _secret(output: str) -> str:
    return re.search(r"^\s+(crm_\S+)$", output, re.MULTILINE).group(1)


def test_a_new_token_is_shown_once_and_stored_only_as_its_hash(cli, org):
    result = cli.invoke(
        args=["crm", "api-token", "create", "--name", "billing", "--scope", "stats:read", "--org", org.slug]
    )
    assert result.exit_code == 0, result.output
    secret = _secret(result.output)
    assert len(secret) >= 40
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == "billing"))
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:12] and token.org_ids == [str(org.id)] and token.scopes == ["stats:read"]
    stored = " ".join(str(v) for v in db.session.execute(text("SELECT * FROM api_tokens")).one())
    assert secret not in stored and secret[12:] not in stored
    listed = cli.invoke(args=["crm", "api-token", "list"])
    assert "billing" in listed.output and token.prefix in listed.output and secret not in listed.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scope", "stats:read"], "Name the organisations"),
        (["--scope", "stats:read", "--org", "{org}", "--all-orgs"], "Name the organisations"),
        (["--scope", "admin:everything", "--org", "{org}"], "not admin:everything"),
        (["--scope", "stats:read", "--org", "no-such-org"], "No organisation with slug no-such-org"),
        (["--scope", "stats:read", "--org", "{org}", "--expires-in", "soon"], "A duration is"),
    ],
)
def test_a_token_without_a_clear_scope_is_refused(cli, org, args, message):
    args = [a.replace("{org}", org.slug) for a in args]
    result = cli.invoke(args=["crm", "api-token", "create", "--name", "x", *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert db.session.scalar(select(ApiToken)) is None


def test_a_token_acts_only_for_its_organisations_and_endpoints(client, org, other_org):
    issued = api_tokens.create(name="reporting", scopes=["stats:read"], org_slugs=[org.slug])
    assert _stats(client, org, issued.secret).status_code == 200
    refused = _stats(client, other_org, issued.secret)  # another organisation's figures
    assert refused.status_code == 403 and refused.is_json
    assert _usage(client, org, issued.secret).status_code == 403  # an endpoint outside its scopes
    everywhere = api_tokens.create(name="billing", scopes=["usage:write"], all_orgs=True)
    assert _usage(client, other_org, everywhere.secret).status_code == 201
    assert _stats(client, other_org, everywhere.secret).status_code == 403


def test_rotation_keeps_the_old_token_working_for_the_overlap_only(cli, client, org):
    first = api_tokens.create(name="billing", scopes=["stats:read"], org_slugs=[org.slug])
    rotated = cli.invoke(args=["crm", "api-token", "rotate", "--name", "billing", "--overlap", "2h"])
    assert rotated.exit_code == 0, rotated.output
    second = _secret(rotated.output)
    assert _stats(client, org, second).status_code == 200
    assert _stats(client, org, first.secret).status_code == 200  # still inside the overlap
    old = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == api_tokens.hash_secret(first.secret)))
    assert timedelta(hours=1, minutes=59) < old.expires_at - utcnow() <= timedelta(hours=2)
    old.expires_at = utcnow() - timedelta(seconds=1)  # the overlap is over
    db.session.commit()
    assert _stats(client, org, first.secret).status_code == 401
    assert _stats(client, org, second).status_code == 200


def test_revocation_ends_every_token_of_the_name_at_once(cli, client, org):
    issued = api_tokens.create(name="old-service", scopes=["stats:read"], org_slugs=[org.slug])
    api_tokens.rotate(name="old-service", overlap=timedelta(days=1))
    result = cli.invoke(args=["crm", "api-token", "revoke", "--name", "old-service"])
    assert result.exit_code == 0 and "Revoked 2 token(s)" in result.output
    assert _stats(client, org, issued.secret).status_code == 401
    assert cli.invoke(args=["crm", "api-token", "rotate", "--name", "old-service"]).exit_code == 1


def test_the_former_environment_token_is_imported_with_a_scope(cli, client, org, monkeypatch):
    legacy = "an-old-internal-token-value-of-40-characters"
    monkeypatch.setenv("CRM_INTERNAL_TOKEN", legacy)
    args = ["--name", "legacy", "--from-env", "CRM_INTERNAL_TOKEN", "--scope", "stats:read", "--org", org.slug]
    result = cli.invoke(args=["crm", "api-token", "create", *args])
    assert result.exit_code == 0 and "unset it now" in result.output and legacy not in result.output
    assert _stats(client, org, legacy).status_code == 200
    monkeypatch.setenv("CRM_INTERNAL_TOKEN", "short")
    refused = cli.invoke(args=["crm", "api-token", "create", *args])
    assert refused.exit_code == 1 and "32 to 200 characters" in refused.output


def test_a_bearer_too_long_to_be_a_token_is_401_without_a_lookup(client, org):
    response = _stats(client, org, "x" * 10_000)
    assert response.status_code == 401 and response.is_json


def _limited_app(tmp_path, **limits):
    from flask_migrate import upgrade

    from crm_web import create_app
    from tests.conftest import MIGRATIONS

    application = create_app({**base_config(f"sqlite:///{tmp_path / 'limits.sqlite3'}"), **limits})
    application.test_client_class = CSRFClient
    with application.app_context():
        upgrade(directory=MIGRATIONS)
    return application


def test_each_token_is_rate_limited(tmp_path):
    application = _limited_app(tmp_path, INTERNAL_RATE_LIMIT="3 per minute")
    with application.app_context():
        org = factories.make_org("limited")
        factories.make_api_token(org)
        other = factories.make_api_token(org, secret="crm_a-second-token-with-its-own-limit-xxxx", name="second")
        assert other is not None
        client = application.test_client()
        statuses = [_stats(client, org, factories.INTERNAL_TOKEN).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = _stats(client, org, factories.INTERNAL_TOKEN)
        assert limited.is_json and "Retry-After" in limited.headers
        assert _stats(client, org, "crm_a-second-token-with-its-own-limit-xxxx").status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_failed_token_checks_are_limited_per_address(tmp_path):
    application = _limited_app(tmp_path, INTERNAL_AUTH_FAILURE_LIMIT="3 per minute")
    with application.app_context():
        org = factories.make_org("guessed")
        factories.make_api_token(org)
        client = application.test_client()
        statuses = [_stats(client, org, f"crm_guess-{n}").status_code for n in range(4)]
        assert statuses == [401, 401, 401, 429]
        # Once the address is over its limit, even the right token waits: guessing costs the guesser.
        assert _stats(client, org, factories.INTERNAL_TOKEN).status_code == 429
        other_address = application.test_client()
        response = other_address.get(
            f"/internal/orgs/{org.id}/stats",
            headers=_bearer(factories.INTERNAL_TOKEN),
            environ_base={"REMOTE_ADDR": "10.0.0.7"},
        )
        assert response.status_code == 200
        db.session.remove()
        db.engine.dispose()

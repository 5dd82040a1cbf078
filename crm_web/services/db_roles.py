"""The PostgreSQL role the web app connects as: plain, subject to row-level security.

Two roles serve one database (docs/security.md, "The database wall"):

- the *system role* owns the tables: it runs the migrations and the CLI (seeding, purge, user and
  token set-up) and is not subject to the tenant policies (they are not FORCEd);
- the *web role* runs gunicorn: no superuser, no BYPASSRLS, not the owner, so every tenant row it
  reads or writes passes the policies, and with no organisation set it sees none.

`ensure_web_role` (`flask crm web-role`, run as the system role or a superuser) creates the web role
if needed and grants it exactly what the app needs; `make run`, `make bench` and `make load` use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import make_url

from crm_web.database import timeout_values
from crm_web.errors import ValidationError
from crm_web.extensions import db

# Built-in functions the search conditions use, and `->>` (jsonb_object_field_text) that custom field
# conditions and the search of custom text fields use; marking them LEAKPROOF lets the planner use the
# trigram and custom field indexes under the policies; `translate` and `right` make the phone key
# (models/mixins.phone_key_sql) of the forms' duplicate warning, looked up in its index
# (docs/security.md, "Cost: searches and LEAKPROOF"). The numeric comparisons let it use the number and
# money fields' statistics: under the policies PostgreSQL estimates a condition from statistics only
# through a leakproof operator, else guesses it keeps 0.5% of the rows. Their conditions still cast
# the text (numeric_in, unmarked), so they still never reach an index. Superuser only.
LEAKPROOF_FUNCTIONS = (
    "lower(text)",
    "textcat(text, text)",
    "texticlike(text, text)",
    "similarity_op(text, text)",
    "jsonb_object_field_text(jsonb, text)",
    "translate(text, text, text)",
    '"right"(text, integer)',
    "numeric_eq(numeric, numeric)",
    "numeric_ne(numeric, numeric)",
    "numeric_lt(numeric, numeric)",
    "numeric_le(numeric, numeric)",
    "numeric_gt(numeric, numeric)",
    "numeric_ge(numeric, numeric)",
)
# Tables the web role may read but never change; the schema's bookkeeping it may not even read.
READ_ONLY_TABLES = ("api_tokens",)
NO_ACCESS_TABLES = ("alembic_version",)


@dataclass(frozen=True)
class WebRole:
    name: str
    url: str
    created: bool
    leakproof: bool


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_web_role(*, name: str, password: str | None = None, mark_leakproof: bool = True) -> WebRole:
    """Create (once) and grant the web role in the current database; returns its connection URL."""
    session = db.session
    if session.get_bind().dialect.name != "postgresql":
        raise ValidationError("The web role exists on PostgreSQL only (SQLite has no roles).")
    if not name.replace("_", "").isalnum() or len(name) > 63:
        raise ValidationError("A role name is letters, digits and underscores (at most 63).")
    role = _quote(name)
    found = session.execute(
        text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :name"), {"name": name}
    ).first()
    if found is not None and found[0]:
        raise ValidationError(f"Role {name} is a superuser or bypasses row-level security: not a web role.")
    created = found is None
    options = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
    if created:
        session.execute(text(f"CREATE ROLE {role} {options}"))
    if password is not None:
        # Utility statements take no bind parameters: quote the literal the way PostgreSQL does.
        literal = "'" + password.replace("'", "''") + "'"
        session.execute(text(f"ALTER ROLE {role} PASSWORD {literal}"))
    owner = session.scalar(text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'contacts'::regclass"))
    if owner == name:
        raise ValidationError(f"Role {name} owns the tables (it would bypass the policies): not a web role.")
    database = session.scalar(text("SELECT current_database()"))
    for statement in (
        f"GRANT CONNECT ON DATABASE {_quote(database)} TO {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        # Tables that later migrations create (as this role) get the same grants.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        *(f"REVOKE INSERT, UPDATE, DELETE ON {table} FROM {role}" for table in READ_ONLY_TABLES),
        *(f"REVOKE ALL ON {table} FROM {role}" for table in NO_ACCESS_TABLES),
    ):
        session.execute(text(statement))
    # The statements that run before a request sets its own limits (the user lookup, sign-in) get
    # the app's defaults from the role (crm_web/database.py).
    for setting, value in timeout_values(current_app.config).items():
        session.execute(text(f"ALTER ROLE {role} IN DATABASE {_quote(database)} SET {setting} = {int(value)}"))
    leakproof = mark_leakproof and bool(
        session.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    )
    if leakproof:
        for function in LEAKPROOF_FUNCTIONS:
            session.execute(text(f"ALTER FUNCTION {function} LEAKPROOF"))
    session.commit()
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).set(username=name, password=password)
    return WebRole(name=name, url=url.render_as_string(hide_password=False), created=created, leakproof=leakproof)

"""Row-level security: the database's own tenant wall, behind the services' org scoping.

Every tenant table gets a `tenant_isolation` policy. With `app.current_org` unset or empty
(system context: migrations, CLI seeding/purge, the internal service API) every row is
visible; once a signed-in request sets it (crm_web/auth.py folds `set_config` into the user
loader), only that organisation's rows can be read or written.

`users` and `organizations` deliberately have no policy: signing in looks a user up by email
before any org is known, and the user loader joins the organisation in the same statement
that sets the org. Neither table holds customer data of another tenant that a page lists.

Superusers and roles with BYPASSRLS ignore every policy, so production must connect as a
plain role (docs/security.md, "Tenant isolation"). A no-op on SQLite.

Revision ID: 0002_rls
Revises: 0001_initial
"""

from alembic import op

revision = "0002_rls"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

TENANT_TABLES = [
    "companies",
    "contacts",
    "contact_companies",
    "leads",
    "pipelines",
    "pipeline_stages",
    "deals",
    "activities",
    "tags",
    "record_history",
    "usage_records",
]
# Link tables without org_id: (table, parent table, parent key column). A link row is visible and
# writable only when both its tag and its parent record are in the current org.
TAG_LINK_TABLES = [
    ("contact_tags", "contacts", "contact_id"),
    ("company_tags", "companies", "company_id"),
    ("lead_tags", "leads", "lead_id"),
    ("deal_tags", "deals", "deal_id"),
]

# current_setting(..., true) is NULL when never set in the session and '' after a transaction-local
# set_config has ended; both mean "system context". NULLIF keeps ''::uuid from ever being evaluated
# (OR does not promise left-to-right evaluation).
SYSTEM_CONTEXT = "coalesce(current_setting('app.current_org', true), '') = ''"
CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"


def _policy_for_link_table(table: str, parent: str, key: str) -> str:
    return (
        f"({SYSTEM_CONTEXT} OR ("
        f"EXISTS (SELECT 1 FROM tags t WHERE t.id = {table}.tag_id AND t.org_id = {CURRENT_ORG})"
        f" AND EXISTS (SELECT 1 FROM {parent} p WHERE p.id = {table}.{key} AND p.org_id = {CURRENT_ORG})))"
    )


def _protect(table: str, condition: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    # FORCE: the table owner obeys the policy too (unless it is a superuser).
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {condition} WITH CHECK {condition}")


def _unprotect(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        _protect(table, f"({SYSTEM_CONTEXT} OR org_id = {CURRENT_ORG})")
    for table, parent, key in TAG_LINK_TABLES:
        _protect(table, _policy_for_link_table(table, parent, key))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, _parent, _key in TAG_LINK_TABLES:
        _unprotect(table)
    for table in TENANT_TABLES:
        _unprotect(table)

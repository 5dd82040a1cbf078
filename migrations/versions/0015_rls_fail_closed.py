"""Row-level security fails closed: without an organisation set, the web role sees no tenant row.

Until now each `tenant_isolation` policy granted every row while `app.current_org` was unset or
empty (the "system context"), so any statement of the app's role that emptied the setting, and
every anonymous route, the internal API and the CLI, ran with every organisation visible. Now the
policies grant exactly the rows of the organisation set for the transaction; unset or empty
matches nothing (`org_id = NULL`).

Work that must see every organisation (migrations, the CLI's seeding, purge and user set-up) runs
as a separate role: the owner of the tables (the policies are no longer FORCEd, so the owner is
not subject to them) or any role with BYPASSRLS; superusers bypass them anyway. The web app
connects as a plain role that is neither (README, docs/security.md); the internal API sets the
organisation its token is scoped to, like a signed-in request.

Revision ID: 0015_rls_fail_closed
Revises: 0015_api_tokens
"""

from alembic import op

revision = "0015_rls_fail_closed"
down_revision = "0015_api_tokens"
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
    "deal_tallies",
    "activity_tallies",
    "search_words",
]
TAG_LINK_TABLES = [
    ("contact_tags", "contacts", "contact_id"),
    ("company_tags", "companies", "company_id"),
    ("lead_tags", "leads", "lead_id"),
    ("deal_tags", "deals", "deal_id"),
]
CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
# What 0002, 0010 and 0012 granted, for the downgrade.
SYSTEM_CONTEXT = "coalesce(current_setting('app.current_org', true), '') = ''"


def _link_condition(table: str, parent: str, key: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM tags t WHERE t.id = {table}.tag_id AND t.org_id = {CURRENT_ORG})"
        f" AND EXISTS (SELECT 1 FROM {parent} p WHERE p.id = {table}.{key} AND p.org_id = {CURRENT_ORG})"
    )


def _conditions() -> list[tuple[str, str]]:
    return [(table, f"org_id = {CURRENT_ORG}") for table in TENANT_TABLES] + [
        (table, _link_condition(table, parent, key)) for table, parent, key in TAG_LINK_TABLES
    ]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, condition in _conditions():
        op.execute(f"ALTER POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition})")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, condition in _conditions():
        old = f"({SYSTEM_CONTEXT} OR ({condition}))"
        op.execute(f"ALTER POLICY tenant_isolation ON {table} USING {old} WITH CHECK {old}")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")

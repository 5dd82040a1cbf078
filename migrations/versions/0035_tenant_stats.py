"""Per-tenant statistics: the planner learns that a record's owner, pipeline and stage name its organisation.

Every query filters on org_id (the services' condition and the row-level security policy), and
many also on an owner, a pipeline or a stage, which belong to one organisation. PostgreSQL takes
the conditions as independent and multiplies their selectivities: with one organisation in the
database org_id selects every row and the estimate is right, but with a thousand small ones next to
a big one (docs/benchmarks.md, "Many tenants") a small organisation's "owner = me" or "this
pipeline" was estimated at 1 row where it has hundreds, so its plans were chosen for a size it
does not have. Functional-dependency statistics on (org_id, those columns) let the planner see that
the owner, pipeline or stage implies the organisation, and estimate them once. PostgreSQL only;
ANALYZE (autovacuum's or the bench's) fills them.

Revision ID: 0035_tenant_stats
Revises: 0030_custom_field_trgm
"""

from alembic import op

revision = "0035_tenant_stats"
down_revision = "0033_sqlite_search"
branch_labels = None
depends_on = None

# table: the columns whose every value belongs to one organisation, filtered on with org_id
DEPENDENT = {
    "contacts": ("owner_id",),
    "companies": ("owner_id",),
    "leads": ("owner_id",),
    "deals": ("pipeline_id", "stage_id", "owner_id"),
    "activities": ("owner_id",),
    "pipeline_stages": ("pipeline_id",),
}


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in DEPENDENT.items():
        op.execute(
            f"CREATE STATISTICS IF NOT EXISTS {table}_org_dependencies (dependencies) "
            f"ON org_id, {', '.join(columns)} FROM {table}"
        )
    op.execute(f"ANALYZE {', '.join(DEPENDENT)}")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in DEPENDENT:
        op.execute(f"DROP STATISTICS IF EXISTS {table}_org_dependencies")

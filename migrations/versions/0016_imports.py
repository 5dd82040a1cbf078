"""CSV imports: the imports table, the previous values of what an import updated, the import that
created each record, and whether sales users may import.

- imports, import_updates: tenant tables with the fail-closed `tenant_isolation` policy of
  0015_rls_fail_closed (no organisation set: no row), granted to the roles the app's tables are
  granted to (the web role, `flask crm web-role`).
- import_id on contacts, companies, leads, deals and activities: nullable, indexed, no foreign key
  (SQLite could add one only by rebuilding the tables, and their triggers with them).
- organizations.sales_can_import.

Revision ID: 0016_imports
Revises: 0015_rls_fail_closed
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_imports"
down_revision = "0015_rls_fail_closed"
branch_labels = None
depends_on = None

RECORD_TABLES = ("contacts", "companies", "leads", "deals", "activities")
NEW_TENANT_TABLES = ("imports", "import_updates")
CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
# Whoever may write contacts (the web role, once `crm web-role` ran) may use the import tables too.
GRANT_LIKE_CONTACTS = """
DO $$
DECLARE grantee_name text;
BEGIN
  FOR grantee_name IN
    SELECT DISTINCT grantee FROM information_schema.role_table_grants
    WHERE table_schema = 'public' AND table_name = 'contacts' AND privilege_type = 'INSERT'
      AND grantee NOT IN (current_user, 'PUBLIC')
  LOOP
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON imports, import_updates TO %I', grantee_name);
  END LOOP;
END $$
"""


def upgrade():
    op.create_table(
        "imports",
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_path", sa.String(length=1000), nullable=True),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_imports_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_imports_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index("ix_imports_org_created", "imports", ["org_id", "created_at"], unique=False)
    op.create_index(op.f("ix_imports_org_id"), "imports", ["org_id"], unique=False)
    op.create_table(
        "import_updates",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_import_updates_import_id_imports"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_import_updates_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_updates")),
    )
    op.create_index(op.f("ix_import_updates_import_id"), "import_updates", ["import_id"], unique=False)
    op.create_index(op.f("ix_import_updates_org_id"), "import_updates", ["org_id"], unique=False)
    for table in RECORD_TABLES:
        op.add_column(table, sa.Column("import_id", sa.Uuid(), nullable=True))
        op.create_index(f"ix_{table}_import_id", table, ["import_id"], unique=False)
    op.add_column(
        "organizations", sa.Column("sales_can_import", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    if op.get_bind().dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        for table in NEW_TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition})")
        op.execute(GRANT_LIKE_CONTACTS)


def downgrade():
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would drop the tables' triggers.
    op.drop_column("organizations", "sales_can_import")
    for table in RECORD_TABLES:
        op.drop_index(f"ix_{table}_import_id", table_name=table)
        op.drop_column(table, "import_id")
    op.drop_table("import_updates")
    op.drop_table("imports")

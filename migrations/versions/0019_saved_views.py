"""Saved views: the saved_views table, users' view preferences, and whether sales may publish views.

- saved_views: a tenant table with the fail-closed `tenant_isolation` policy (no organisation set:
  no row), granted to the roles the app's tables are granted to (the web role, `flask crm web-role`).
- users.view_prefs: per list, the order of the view tabs, the hidden built-in views and the default.
- organizations.sales_can_publish_views.

Revision ID: 0019_saved_views
Revises: 0018_currencies
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_saved_views"
down_revision = "0018_currencies"
branch_labels = None
depends_on = None

CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
GRANT_LIKE_CONTACTS = """
DO $$
DECLARE grantee_name text;
BEGIN
  FOR grantee_name IN
    SELECT DISTINCT grantee FROM information_schema.role_table_grants
    WHERE table_schema = 'public' AND table_name = 'contacts' AND privilege_type = 'INSERT'
      AND grantee NOT IN (current_user, 'PUBLIC')
  LOOP
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON saved_views TO %I', grantee_name);
  END LOOP;
END $$
"""


def upgrade():
    op.create_table(
        "saved_views",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("list_key", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("shared", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("query", sa.Text(), server_default="", nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_saved_views_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_saved_views_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["deleted_by_id"], ["users.id"], name=op.f("fk_saved_views_deleted_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
    )
    op.create_index("ix_saved_views_org_list", "saved_views", ["org_id", "list_key"], unique=False)
    op.create_index(op.f("ix_saved_views_org_id"), "saved_views", ["org_id"], unique=False)
    op.create_index(op.f("ix_saved_views_owner_id"), "saved_views", ["owner_id"], unique=False)
    op.add_column("users", sa.Column("view_prefs", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
    op.add_column(
        "organizations",
        sa.Column("sales_can_publish_views", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        op.execute("ALTER TABLE saved_views ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON saved_views USING ({condition}) WITH CHECK ({condition})")
        op.execute(GRANT_LIKE_CONTACTS)


def downgrade():
    op.drop_column("organizations", "sales_can_publish_views")
    op.drop_column("users", "view_prefs")
    op.drop_index(op.f("ix_saved_views_owner_id"), table_name="saved_views")
    op.drop_index(op.f("ix_saved_views_org_id"), table_name="saved_views")
    op.drop_index("ix_saved_views_org_list", table_name="saved_views")
    op.drop_table("saved_views")

"""Duplicates: dismissed pairs ("Not a duplicate") and merges with what their Undo reverts.

Both are tenant tables (org_id, row-level security like the others). Leads get the case-folded email
index contacts have (0005), in which the duplicate scan finds the shared emails.

Revision ID: 0021_duplicates
Revises: 0018_currencies
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_duplicates"
down_revision = "0020_custom_fields"
branch_labels = None
depends_on = None

CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
TABLES = ("duplicate_dismissals", "merges")


def upgrade():
    op.create_table(
        "duplicate_dismissals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=30), nullable=False),
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("second_id", sa.Uuid(), nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_duplicate_dismissals_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_duplicate_dismissals_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_dismissals")),
        sa.UniqueConstraint("org_id", "entity_type", "first_id", "second_id", name="uq_duplicate_pair"),
    )
    op.create_index(op.f("ix_duplicate_dismissals_org_id"), "duplicate_dismissals", ["org_id"])
    op.create_table(
        "merges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=30), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
        sa.Column("merged_ids", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_merges_actor_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_merges_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merges")),
    )
    op.create_index(op.f("ix_merges_org_id"), "merges", ["org_id"])
    op.create_index("ix_merges_org_survivor", "merges", ["org_id", "entity_type", "survivor_id"])
    op.create_index("ix_leads_org_email_key", "leads", ["org_id", sa.text("lower(email)")])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition})")


def downgrade():
    op.drop_index("ix_leads_org_email_key", table_name="leads")
    op.drop_index("ix_merges_org_survivor", table_name="merges")
    op.drop_index(op.f("ix_merges_org_id"), table_name="merges")
    op.drop_table("merges")
    op.drop_index(op.f("ix_duplicate_dismissals_org_id"), table_name="duplicate_dismissals")
    op.drop_table("duplicate_dismissals")

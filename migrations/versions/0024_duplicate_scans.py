"""Merge proposals (a sales user proposes merging a group of duplicates; managers and admins accept,
the merge screen, or dismiss) and stored duplicate scans (a large organisation's scan, computed by a
background job).

Both are tenant tables (org_id, the row-level security policy like every other).

Revision ID: 0024_duplicate_scans
Revises: 0023_rotting
"""

import sqlalchemy as sa
from alembic import op

revision = "0024_duplicate_scans"
down_revision = "0023_rotting"
branch_labels = None
depends_on = None

CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
TABLES = ("merge_proposals", "duplicate_scans")


def upgrade():
    op.create_table(
        "merge_proposals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("proposed_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposed_by_id"],
            ["users.id"],
            name=op.f("fk_merge_proposals_proposed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_merge_proposals_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_proposals")),
        sa.UniqueConstraint("org_id", "entity_type", "key", name="uq_merge_proposal_group"),
    )
    op.create_index(op.f("ix_merge_proposals_org_id"), "merge_proposals", ["org_id"])
    op.create_table(
        "duplicate_scans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_duplicate_scans_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_scans")),
        sa.UniqueConstraint("org_id", "entity_type", name="uq_duplicate_scan_entity"),
    )
    op.create_index(op.f("ix_duplicate_scans_org_id"), "duplicate_scans", ["org_id"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition})")


def downgrade():
    op.drop_index(op.f("ix_duplicate_scans_org_id"), table_name="duplicate_scans")
    op.drop_table("duplicate_scans")
    op.drop_index(op.f("ix_merge_proposals_org_id"), table_name="merge_proposals")
    op.drop_table("merge_proposals")

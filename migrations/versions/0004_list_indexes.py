"""Indexes for the list pages at scale (docs/benchmarks.md, "What was slow at L").

Partial (org_id, deleted_at) indexes of the trashed rows only, one per trashable table: the trash
page reads the newest trashed rows of each table by a range scan instead of scanning every table.
Declared in the models with the same predicate on both engines (models/mixins.trash_index).

Revision ID: 0004_list_indexes
Revises: 0003_search_indexes
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_list_indexes"
down_revision = "0003_search_indexes"
branch_labels = None
depends_on = None

TRASHABLE = ("contacts", "companies", "leads", "deals", "activities")
TRASHED = sa.text("deleted_at IS NOT NULL")


def upgrade():
    for table in TRASHABLE:
        op.create_index(f"ix_{table}_org_trashed", table, ["org_id", "deleted_at"],
                        postgresql_where=TRASHED, sqlite_where=TRASHED)


def downgrade():
    for table in reversed(TRASHABLE):
        op.drop_index(f"ix_{table}_org_trashed", table_name=table)

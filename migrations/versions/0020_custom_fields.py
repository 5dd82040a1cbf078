"""Custom fields and the column chooser.

- organizations.custom_fields: the organisation's field definitions ({entity: [field, ...]}), read with
  the organisation's row, which every signed-in request loads anyway.
- custom on contacts, companies, leads and deals: the values, JSONB on PostgreSQL, JSON text on SQLite.
  Per-field expression indexes are created when a field is defined (services/custom_fields.py), not here.
- users.list_columns: the columns each user picked per list.

Revision ID: 0020_custom_fields
Revises: 0018_currencies
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0020_custom_fields"
down_revision = "0019_saved_views"
branch_labels = None
depends_on = None

VALUE_TABLES = ("contacts", "companies", "leads", "deals")


def upgrade():
    op.add_column("organizations", sa.Column("custom_fields", sa.JSON(), nullable=True))
    op.add_column("users", sa.Column("list_columns", sa.JSON(), nullable=True))
    for table in VALUE_TABLES:
        op.add_column(table, sa.Column("custom", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True))


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild would drop the tables' triggers.
    for table in VALUE_TABLES:
        op.drop_column(table, "custom")
    op.drop_column("users", "list_columns")
    op.drop_column("organizations", "custom_fields")

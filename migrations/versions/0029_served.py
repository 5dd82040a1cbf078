"""Partial indexes of the live companies in list order, and of the live companies and leads by
creation date.

The company list is sorted by lower(name) then id by default; without an index in that order
PostgreSQL read and sorted every live company of the organisation for each page. The company and
lead lists' totals read every row to check deleted_at; a narrow index of the live rows makes them
index-only counts (the lead list's default order, newest first, reads the same index). Declared in
the models.

Revision ID: 0029_served
Revises: 0024_duplicate_scans
"""

import sqlalchemy as sa
from alembic import op

revision = "0029_served"
down_revision = "0024_duplicate_scans"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
TABLES = ("companies", "leads")


def upgrade():
    op.create_index(
        "ix_companies_org_lower_name_live",
        "companies",
        ["org_id", sa.text("lower(name)"), "id"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    for table in TABLES:
        op.create_index(
            f"ix_{table}_org_created_at_live", table, ["org_id", "created_at"], postgresql_where=LIVE, sqlite_where=LIVE
        )


def downgrade():
    for table in reversed(TABLES):
        op.drop_index(f"ix_{table}_org_created_at_live", table_name=table)
    op.drop_index("ix_companies_org_lower_name_live", table_name="companies")

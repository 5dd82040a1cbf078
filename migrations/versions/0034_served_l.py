"""A partial index of each owner's open live deals in the order My day lists them.

My day (services/my_day.py) shows the user's open deals closing this week or rotting in their stage,
by expected close date, at most 50. The deals' other indexes lead with the status or the stage, so
at L it read every open deal of the organisation (several thousand rows, 50-80 ms on a busy machine)
to keep one owner's. This one holds (org_id, owner_id, expected_close_date, stage_changed_at, id,
stage_id) of the open live deals: the page's ids are read from it alone, in order, with the stage's
rotting limit joined (an index-only scan), and only the 50 shown rows are read whole. Declared in
the models (Deal.__table_args__).

Revision ID: 0034_served_l
Revises: 0030_custom_field_trgm
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_served_l"
down_revision = "0030_custom_field_trgm"
branch_labels = None
depends_on = None

OPEN_LIVE = sa.text("status = 'open' AND deleted_at IS NULL")
NAME = "ix_deals_org_owner_open_close_live"
COLUMNS = ["org_id", "owner_id", "expected_close_date", "stage_changed_at", "id", "stage_id"]


def upgrade():
    op.create_index(NAME, "deals", COLUMNS, postgresql_where=OPEN_LIVE, sqlite_where=OPEN_LIVE)


def downgrade():
    op.drop_index(NAME, table_name="deals")

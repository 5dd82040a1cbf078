"""A partial index of the live activities by due time, so the calendar cuts its range on the index.

The calendar (services/calendar.py) counts and cuts the activities due in a week or a month, the
team's or one owner's. The other due-time indexes lead with the status, or the owner, or cover
trashed rows too, so a team's month read the activities table. This one holds (org_id, due_at,
owner_id, id) of the live rows: the range is one index range, the owner is checked in the index,
and the ids the calendar keeps are read from it. Declared in the models with models/mixins.live_index.

Revision ID: 0031_calendar_index
Revises: 0029_served
"""

import sqlalchemy as sa
from alembic import op

revision = "0031_calendar_index"
down_revision = "0029_served"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
NAME = "ix_activities_org_due_at_owner_id_id_live"


def upgrade():
    op.create_index(
        NAME, "activities", ["org_id", "due_at", "owner_id", "id"], postgresql_where=LIVE, sqlite_where=LIVE
    )


def downgrade():
    op.drop_index(NAME, table_name="activities")

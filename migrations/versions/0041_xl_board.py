"""Open activities tallied by due day, so the dashboard's overdue count stops reading every overdue task.

The dashboard's "overdue tasks" is the live open activities (pending, in progress) due before now.
It was an index-only count of the (org, status, due_at) entries before now: every overdue task of
the organisation read on each cold dashboard, and overdue tasks pile up (at XL half a million
entries). This table keeps, per organisation, owner and UTC due day, the number of live open
activities with a due time, appended by triggers as each write commits (the same scheme as
0010_tallies: statement-level over transition tables on PostgreSQL, row-level on SQLite, rows only
appended, folded by services/stats/tallies.py). The count is then the tallied days before today
(UTC) plus the open activities due today before now: a few hundred tally rows and one day's index
entries, and still exact. The policy, triggers and backfill: migrations/sql/0041_xl_board_<dialect>.sql.

Revision ID: 0041_xl_board
Revises: 0039_xl_plans
"""

import sqlalchemy as sa
from alembic import op

from crm_web.sql_files import execute_file

revision = "0041_xl_board"
down_revision = "0039_xl_plans"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "activity_due_tallies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("due_day", sa.Date(), nullable=False),
        sa.Column("activities", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_due_tallies")),
    )
    op.create_index("ix_activity_due_tallies_org_owner", "activity_due_tallies", ["org_id", "owner_id"])
    execute_file(op, revision)


def downgrade():
    dialect = op.get_bind().dialect.name
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER activity_due_tallies_{event} " + ("ON activities" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION activity_due_tallies_count()")
    op.drop_index("ix_activity_due_tallies_org_owner", table_name="activity_due_tallies")
    op.drop_table("activity_due_tallies")

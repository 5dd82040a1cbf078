"""Activities tallied by day, so the dashboard's clock-bound counts stop reading every task of their range.

The dashboard counts the live open activities (pending, in progress) due before now ("overdue"),
due this week, and the activities completed this week. Each was an index-only count of the
(org, status, due_at or completed_at) entries of its range: the overdue one every overdue task of
the organisation on each cold dashboard (they pile up: at XL half a million entries), the weekly
ones a week of a busy organisation's tasks. This table keeps, per organisation, owner, kind and UTC
day, the number of live open activities due that day (kind 'due') and of completed activities
completed that day (kind 'completed'), appended by triggers as each write commits (the same scheme
as 0010_tallies: statement-level over transition tables on PostgreSQL, row-level on SQLite, rows
only appended, folded by services/stats/tallies.py). A count is then the tallied whole UTC days of
its range plus the index entries of the partial days at its ends: a few hundred tally rows and at
most two days' entries, and still exact. The policy, the rule, triggers and backfill:
migrations/sql/0041_xl_board_<dialect>.sql.

Revision ID: 0041_xl_board
Revises: 0040_xl_search
"""

import sqlalchemy as sa
from alembic import op

from crm_web.sql_files import execute_file

revision = "0041_xl_board"
down_revision = "0040_xl_search"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "activity_day_tallies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("activities", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_day_tallies")),
    )
    op.create_index("ix_activity_day_tallies_org_owner", "activity_day_tallies", ["org_id", "owner_id"])
    execute_file(op, revision)


def downgrade():
    dialect = op.get_bind().dialect.name
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER activity_day_tallies_{event} " + ("ON activities" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION activity_day_tallies_count()")
        op.execute("DROP FUNCTION activity_day_group(text, timestamptz, timestamptz, timestamptz)")
    op.drop_index("ix_activity_day_tallies_org_owner", table_name="activity_day_tallies")
    op.drop_table("activity_day_tallies")

"""Deal and activity tallies kept by triggers, so the dashboard stops aggregating whole tables.

The first dashboard view after any change aggregated every deal and every activity of the
organisation: 90 ms each at 50k deals / 200k activities on this project's 2-core machines
(docs/benchmarks.md). These tables hold the same numbers per group (see models/tally.py) and
triggers keep them as each write commits, on both engines:

- PostgreSQL: statement-level AFTER triggers over the transition tables, so a bulk statement (a
  seed batch, a bulk delete) appends one row per group it changed, not one per deal; an UPDATE
  that changed nothing counted (a rename, a reorder) appends nothing (the HAVING).
- SQLite has no statement-level triggers: row-level ones, skipped by a WHEN clause unless a
  counted column changed.

A stage's probability weighs its open deals that have none of their own, so changing it (or
deleting the stage, which leaves them at 0 %) appends the difference for those deals; on
PostgreSQL a deal write holds its stages FOR SHARE, so such a change waits for it (and the other
way round) instead of rebasing without it. TRUNCATE is not counted (nothing in the app truncates).

The weighted formula is services/forecast.py's (open: value x probability / 100 rounded to the
cent per deal, won 100 %, lost 0); tests/test_tallies.py checks that the tallies equal the
aggregates after every kind of write, on both engines. The SQL is in migrations/sql/0010_tallies_*.sql,
frozen with this migration; tests/test_database_sql.py ties it to the schema and to the formula.

Revision ID: 0010_tallies
Revises: 0009_company_search_indexes
"""

import sqlalchemy as sa
from alembic import op

from crm_web.sql_files import execute_file

revision = "0010_tallies"
down_revision = "0009_company_search_indexes"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def _create_tables() -> None:
    tally_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "deal_tallies",
        sa.Column("id", tally_id, sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("stage_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("expected_month", sa.Date(), nullable=True),
        sa.Column("closed_month", sa.Date(), nullable=True),
        sa.Column("deals", sa.Integer(), nullable=False),
        sa.Column("value", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("weighted", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("won_days", sa.Double(), nullable=False),
        sa.Column("won_timed", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_tallies")),
    )
    op.create_index("ix_deal_tallies_org_owner", "deal_tallies", ["org_id", "owner_id"])
    op.create_table(
        "activity_tallies",
        sa.Column("id", tally_id, sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("activities", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_tallies")),
    )
    op.create_index("ix_activity_tallies_org_owner", "activity_tallies", ["org_id", "owner_id"])
    for columns in (("status", "due_at", "owner_id"), ("status", "completed_at", "owner_id")):
        op.create_index(
            f"ix_activities_org_{'_'.join(columns)}_live",
            "activities",
            ["org_id", *columns],
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )


def upgrade():
    _create_tables()
    # The policies, triggers and backfill: migrations/sql/0010_tallies_<dialect>.sql.
    execute_file(op, revision)


def downgrade():
    dialect = op.get_bind().dialect.name
    for name, table in (("deal", "deals"), ("activity", "activities")):
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {name}_tallies_{event} " + (f"ON {table}" if dialect == "postgresql" else ""))
    for trigger in ("deal_tallies_stage_probability", "deal_tallies_stage_delete"):
        op.execute(f"DROP TRIGGER {trigger} " + ("ON pipeline_stages" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        for function in ("deal_tallies_count", "activity_tallies_count", "deal_tallies_rebase_stage"):
            op.execute(f"DROP FUNCTION {function}()")
    for columns in (("status", "completed_at", "owner_id"), ("status", "due_at", "owner_id")):
        op.drop_index(f"ix_activities_org_{'_'.join(columns)}_live", table_name="activities")
    op.drop_index("ix_activity_tallies_org_owner", table_name="activity_tallies")
    op.drop_table("activity_tallies")
    op.drop_index("ix_deal_tallies_org_owner", table_name="deal_tallies")
    op.drop_table("deal_tallies")

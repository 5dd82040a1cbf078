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
aggregates after every kind of write, on both engines. This file keeps its own copy of the SQL
on purpose: a migration is a frozen snapshot.

Revision ID: 0010_tallies
Revises: 0009_company_search_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_tallies"
down_revision = "0009_company_search_indexes"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
SYSTEM_CONTEXT = "coalesce(current_setting('app.current_org', true), '') = ''"
CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"

DEAL_KEYS = "org_id, owner_id, stage_id, status, expected_month, closed_month"
DEAL_SUMS = "deals, value, weighted, won_days, won_timed"
ACTIVITY_KEYS = "org_id, owner_id, status, type"
# Columns of a deal that change what it counts for.
DEAL_COUNTED = (
    "org_id",
    "owner_id",
    "stage_id",
    "status",
    "expected_close_date",
    "closed_at",
    "value",
    "probability",
    "created_at",
    "deleted_at",
)
ACTIVITY_COUNTED = ("org_id", "owner_id", "status", "type", "deleted_at")


def _weighted(value: str, percent: str, dialect: str) -> str:
    # services/forecast.py's formula: rounded to the cent per deal.
    if dialect == "sqlite":
        return f"round({value} * {percent} / 100.0, 2)"
    return f"CAST({value} * {percent} / 100 AS numeric(16, 2))"


def _deal_keys(d: str, dialect: str) -> str:
    """The group of deal `d`: DEAL_KEYS."""
    if dialect == "sqlite":
        expected, closed = (f"strftime('%Y-%m-01', {d}.expected_close_date)", f"strftime('%Y-%m-01', {d}.closed_at)")
    else:
        expected = f"date_trunc('month', {d}.expected_close_date::timestamp)::date"
        closed = f"date_trunc('month', {d}.closed_at AT TIME ZONE 'UTC')::date"
    return (
        f"{d}.org_id, {d}.owner_id, {d}.stage_id, {d}.status, {expected} AS expected_month, "
        f"CASE WHEN {d}.status IN ('won', 'lost') THEN {closed} END AS closed_month"
    )


def _deal_sums(d: str, sign: str, stage_probability: str, dialect: str) -> str:
    """What deal `d` adds to its group (sign 1) or takes away (sign -1): DEAL_SUMS."""
    percent = (
        f"(CASE {d}.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 "
        f"ELSE coalesce({d}.probability, {stage_probability}, 0) END)"
    )
    won_timed = f"{d}.status = 'won' AND {d}.closed_at IS NOT NULL"
    days = (
        f"julianday({d}.closed_at) - julianday({d}.created_at)"
        if dialect == "sqlite"
        else f"extract(epoch FROM {d}.closed_at - {d}.created_at) / 86400.0"
    )
    return (
        f"{sign} AS deals, {sign} * {d}.value AS value, "
        f"{sign} * {_weighted(f'{d}.value', percent, dialect)} AS weighted, "
        f"{sign} * (CASE WHEN {won_timed} THEN {days} ELSE 0 END) AS won_days, "
        f"{sign} * (CASE WHEN {won_timed} THEN 1 ELSE 0 END) AS won_timed"
    )


def _deal_row(d: str, sign: str, stage_probability: str, dialect: str) -> str:
    return f"{_deal_keys(d, dialect)}, {_deal_sums(d, sign, stage_probability, dialect)}"


def _sum_groups(rows: str, keys: str, sums: str) -> str:
    """Sum `rows` per group; groups the statement left unchanged are not written."""
    summed = ", ".join(f"sum({column})" for column in sums.split(", "))
    changed = " OR ".join(f"sum({column}) <> 0" for column in sums.split(", "))
    return f"SELECT {keys}, {summed} FROM ({rows}) AS changed GROUP BY {keys} HAVING {changed}"


def _live_deals(table: str, sign: str) -> str:
    return (
        f"SELECT {_deal_row('d', sign, 's.probability', 'postgresql')} FROM {table} d "
        f"LEFT JOIN pipeline_stages s ON s.id = d.stage_id WHERE d.deleted_at IS NULL"
    )


def _live_activities(table: str, sign: str) -> str:
    return f"SELECT {ACTIVITY_KEYS}, {sign} AS activities FROM {table} WHERE deleted_at IS NULL"


def _stage_rebase(new_percent: str, dialect: str) -> str:
    """The stage OLD's open deals without a probability of their own: weight at `new_percent` minus
    weight at OLD.probability."""
    delta = f"{_weighted('d.value', new_percent, dialect)} - {_weighted('d.value', 'OLD.probability', dialect)}"
    return (
        f"INSERT INTO deal_tallies ({DEAL_KEYS}, {DEAL_SUMS}) "
        f"SELECT {DEAL_KEYS}, 0, 0, sum(delta), 0, 0 FROM (SELECT {_deal_keys('d', dialect)}, {delta} AS delta "
        f"FROM deals d WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' "
        f"AND d.probability IS NULL) AS rebased GROUP BY {DEAL_KEYS} HAVING sum(delta) <> 0"
    )


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


def _postgresql_triggers() -> None:
    for table in ("deal_tallies", "activity_tallies"):
        condition = f"({SYSTEM_CONTEXT} OR org_id = {CURRENT_ORG})"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {condition} WITH CHECK {condition}")
    for name, tally, keys, sums, live in (
        ("deal", "deal_tallies", DEAL_KEYS, DEAL_SUMS, _live_deals),
        ("activity", "activity_tallies", ACTIVITY_KEYS, "activities", _live_activities),
    ):
        insert = f"INSERT INTO {tally} ({keys}, {sums}) "

        def lock_stages(*tables: str) -> str:
            # A deal weighs itself with its stage's probability as this transaction sees it; without
            # the lock a concurrent probability change could commit a rebase that misses this deal.
            if name != "deal":
                return ""
            stage_ids = " UNION ".join(f"SELECT stage_id FROM {t}" for t in tables)
            return f"PERFORM 1 FROM pipeline_stages WHERE id IN ({stage_ids}) ORDER BY id FOR SHARE;"

        op.execute(f"""
            CREATE FUNCTION {name}_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    {lock_stages("new_rows")}
                    {insert}{_sum_groups(live("new_rows", "1"), keys, sums)};
                ELSIF TG_OP = 'UPDATE' THEN
                    {lock_stages("old_rows", "new_rows")}
                    {insert}{_sum_groups(live("old_rows", "-1") + " UNION ALL " + live("new_rows", "1"), keys, sums)};
                ELSE
                    {lock_stages("old_rows")}
                    {insert}{_sum_groups(live("old_rows", "-1"), keys, sums)};
                END IF;
                RETURN NULL;
            END $$""")
        table = f"{name}s" if name == "deal" else "activities"
        for event, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            op.execute(
                f"CREATE TRIGGER {name}_tallies_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {name}_tallies_count()"
            )
    op.execute(f"""
        CREATE FUNCTION deal_tallies_rebase_stage() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE new_percent integer := 0;
        BEGIN
            IF TG_OP = 'UPDATE' THEN
                new_percent := NEW.probability;
            END IF;
            {_stage_rebase("new_percent", "postgresql")};
            RETURN OLD;  -- a BEFORE DELETE trigger returning NULL would cancel the delete
        END $$""")
    op.execute(
        "CREATE TRIGGER deal_tallies_stage_probability AFTER UPDATE OF probability ON pipeline_stages "
        "FOR EACH ROW WHEN (OLD.probability IS DISTINCT FROM NEW.probability) "
        "EXECUTE FUNCTION deal_tallies_rebase_stage()"
    )
    # BEFORE: the stage's deals still point at it (the delete then sets their stage to NULL).
    op.execute(
        "CREATE TRIGGER deal_tallies_stage_delete BEFORE DELETE ON pipeline_stages "
        "FOR EACH ROW EXECUTE FUNCTION deal_tallies_rebase_stage()"
    )


def _sqlite_triggers() -> None:
    stage_probability = "(SELECT probability FROM pipeline_stages WHERE id = {d}.stage_id)"
    for name, table, tally, keys, sums, counted in (
        ("deal", "deals", "deal_tallies", DEAL_KEYS, DEAL_SUMS, DEAL_COUNTED),
        ("activity", "activities", "activity_tallies", ACTIVITY_KEYS, "activities", ACTIVITY_COUNTED),
    ):

        def row(d, sign):
            if name == "deal":
                return _deal_row(d, sign, stage_probability.format(d=d), "sqlite")
            return ", ".join(f"{d}.{key}" for key in keys.split(", ")) + f", {sign}"

        def add(d, sign):
            return f"INSERT INTO {tally} ({keys}, {sums}) SELECT {row(d, sign)} WHERE {d}.deleted_at IS NULL;"

        changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in counted)
        op.execute(f"CREATE TRIGGER {name}_tallies_insert AFTER INSERT ON {table} BEGIN {add('NEW', '1')} END")
        op.execute(
            f"CREATE TRIGGER {name}_tallies_update AFTER UPDATE ON {table} WHEN {changed} "
            f"BEGIN {add('OLD', '-1')} {add('NEW', '1')} END"
        )
        op.execute(f"CREATE TRIGGER {name}_tallies_delete AFTER DELETE ON {table} BEGIN {add('OLD', '-1')} END")
    op.execute(
        "CREATE TRIGGER deal_tallies_stage_probability AFTER UPDATE OF probability ON pipeline_stages "
        "WHEN OLD.probability IS NOT NEW.probability "
        f"BEGIN {_stage_rebase('NEW.probability', 'sqlite')}; END"
    )
    op.execute(
        "CREATE TRIGGER deal_tallies_stage_delete BEFORE DELETE ON pipeline_stages "
        f"BEGIN {_stage_rebase('0', 'sqlite')}; END"
    )


def _backfill(dialect: str) -> None:
    """Today's totals, written as already compacted sums."""
    if dialect == "sqlite":
        stage_probability = "(SELECT probability FROM pipeline_stages s WHERE s.id = d.stage_id)"
        deals = f"SELECT {_deal_row('d', '1', stage_probability, 'sqlite')} FROM deals d WHERE d.deleted_at IS NULL"
    else:
        deals = _live_deals("deals", "1")
    op.execute(f"INSERT INTO deal_tallies ({DEAL_KEYS}, {DEAL_SUMS}) {_sum_groups(deals, DEAL_KEYS, DEAL_SUMS)}")
    activities = _sum_groups(_live_activities("activities", "1"), ACTIVITY_KEYS, "activities")
    op.execute(f"INSERT INTO activity_tallies ({ACTIVITY_KEYS}, activities) {activities}")
    for table in ("deal_tallies", "activity_tallies"):
        op.execute(f"UPDATE {table} SET compacted = true")


def upgrade():
    dialect = op.get_bind().dialect.name
    _create_tables()
    if dialect == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()
    _backfill(dialect)
    if dialect == "postgresql":
        op.execute("ANALYZE activities")


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

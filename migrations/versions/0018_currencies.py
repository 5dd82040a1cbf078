"""Exchange rates, and deal tallies that keep each currency apart.

A sum of deals never adds two currencies as one: the organisation keeps a rate per currency
(exchange_rates: 1 unit = rate units of its default currency, with the date it was set), the deal
tallies gain `currency` in their group key, and every reader converts the per-currency sums with
the rates (services/currencies.py); a currency without a rate is shown apart, not summed.

The deal triggers are those of 0010 with `currency` in every group (migrations/sql/0018_currencies_*.sql:
on SQLite the triggers are dropped and created again, on PostgreSQL the functions replaced); the old
rows are dropped and today's deals counted again.

Revision ID: 0018_currencies
Revises: 0015_rls_fail_closed
"""

import sqlalchemy as sa
from alembic import op

from crm_web.sql_files import execute_file, file_statements

revision = "0018_currencies"
down_revision = "0016_imports"
branch_labels = None
depends_on = None

CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
SQLITE_DEAL_TRIGGERS = (
    "deal_tallies_insert",
    "deal_tallies_update",
    "deal_tallies_delete",
    "deal_tallies_stage_probability",
    "deal_tallies_stage_delete",
)


def _drop_sqlite_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in SQLITE_DEAL_TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger}")


def upgrade():
    op.create_table(
        "exchange_rates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("set_at", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rate > 0", name=op.f("ck_exchange_rates_exchange_rate_positive")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_exchange_rates_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rates")),
        sa.UniqueConstraint("org_id", "currency", name="uq_exchange_rates_org_currency"),
    )
    op.create_index(op.f("ix_exchange_rates_org_id"), "exchange_rates", ["org_id"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        op.execute("ALTER TABLE exchange_rates ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON exchange_rates USING ({condition}) WITH CHECK ({condition})")
    _drop_sqlite_triggers()
    op.execute("DELETE FROM deal_tallies")
    with op.batch_alter_table("deal_tallies") as batch:
        batch.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
    execute_file(op, revision)


def downgrade():
    _drop_sqlite_triggers()
    op.execute("DELETE FROM deal_tallies")
    with op.batch_alter_table("deal_tallies") as batch:
        batch.drop_column("currency")
    dialect = op.get_bind().dialect.name
    for statement in file_statements("0010_tallies", dialect):
        if "deal_tallies" not in statement or "POLICY" in statement or "ROW LEVEL" in statement:
            continue
        if dialect == "postgresql" and statement.startswith("CREATE TRIGGER"):
            continue
        op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.drop_index(op.f("ix_exchange_rates_org_id"), table_name="exchange_rates")
    op.drop_table("exchange_rates")

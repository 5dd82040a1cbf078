"""Trigram indexes on the other columns the company list's search box matches: industry, city, website.

The list searched name, industry, city and website, but only the name was indexed, so every
company search read all the organisation's companies, and a needle no company holds went on to
score each of them four times for typos: 440 ms at 20k companies (docs/benchmarks.md).
PostgreSQL only, like 0003 and 0008.

Revision ID: 0009_company_search_indexes
Revises: 0008_search_keys
"""

from alembic import op

revision = "0009_company_search_indexes"
down_revision = "0008_search_keys"
branch_labels = None
depends_on = None

COLUMNS = ("industry", "city", "website")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.execute(f"CREATE INDEX company_{column}_trgm_idx ON companies USING gin (lower({column}) gin_trgm_ops)")
    op.execute("ANALYZE companies")  # expression statistics come only from ANALYZE (see 0008)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in reversed(COLUMNS):
        op.drop_index(f"company_{column}_trgm_idx", table_name="companies")

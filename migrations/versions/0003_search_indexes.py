"""Trigram GIN expression indexes on exactly what the searches match: lower(coalesce(expr, '')).

The 0001 trigram indexes are on raw columns; the list and global searches compare
lower(coalesce(first_name || ' ' || last_name, '')) etc., which no column index can serve, so
every search scored every row (1.7 s at 100k contacts, docs/benchmarks.md). The column indexes
stay: the filter builder's `contains` operators use them. PostgreSQL only (SQLite's search scans;
SQLAlchemy cannot reflect SQLite expression indexes).

Revision ID: 0003_search_indexes
Revises: 0002_rls
"""

from alembic import op

revision = "0003_search_indexes"
down_revision = "0002_rls"
branch_labels = None
depends_on = None

FULL_NAME = "(first_name || ' ') || last_name"
INDEXES = [
    ("contact_name_trgm_idx", "contacts", FULL_NAME),
    ("contact_email_trgm_idx", "contacts", "email"),
    ("company_name_trgm_idx", "companies", "name"),
    ("lead_name_trgm_idx", "leads", FULL_NAME),
    ("lead_email_trgm_idx", "leads", "email"),
    ("lead_company_trgm_idx", "leads", "company_name"),
    ("deal_name_trgm_idx", "deals", "name"),
]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, expression in INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} USING gin (lower(coalesce({expression}, '')) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

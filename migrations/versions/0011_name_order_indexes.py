"""Btree indexes of each searched name in byte order, so the global search reads its best rows first.

The global search ranks names that start with the query first. For a common first name that was
thousands of rows to fetch, rank and sort for five ("john": ~4,000 contacts, 28 ms for that one
statement at L). A name that starts with the query lies in one range of lower(name) compared byte
by byte (COLLATE "C": the default collation orders by language rules, which such a range cannot
use); read in index order, the first five rows are the answer (0.2 ms). Partial (live rows), led
by org_id. PostgreSQL only, like the trigram indexes; declared in the models with
models/mixins.name_order_index.

Revision ID: 0011_name_order_indexes
Revises: 0010_tallies
"""

from alembic import op

revision = "0011_name_order_indexes"
down_revision = "0010_tallies"
branch_labels = None
depends_on = None

INDEXES = [
    ("contact_name_order_idx", "contacts", "(first_name || ' ') || last_name"),
    ("company_name_order_idx", "companies", "name"),
    ("lead_name_order_idx", "leads", "(first_name || ' ') || last_name"),
    ("deal_name_order_idx", "deals", "name"),
]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, expression in INDEXES:
        op.execute(
            f'CREATE INDEX {name} ON {table} (org_id, (lower({expression}) COLLATE "C")) WHERE deleted_at IS NULL'
        )
    for _, table, _ in INDEXES:
        op.execute(f"ANALYZE {table}")  # expression statistics come only from ANALYZE (see 0008)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

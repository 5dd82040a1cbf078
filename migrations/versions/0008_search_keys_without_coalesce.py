"""Search indexes on lower(expr) instead of lower(coalesce(expr, '')), usable under row-level security.

PostgreSQL treats COALESCE as possibly leaky, so for the app's production role (policies enforced,
docs/security.md) it evaluated the tenant policy before any search condition and never used these
indexes: every search read all the organisation's rows. Without COALESCE, marking the search's
functions LEAKPROOF (docs/security.md) lets the trigram indexes serve the searches again. A NULL
column now matches nothing, as before. PostgreSQL only, like 0003.

Revision ID: 0008_search_keys
Revises: 0007_trigram_function_costs
"""

from alembic import op

revision = "0008_search_keys"
down_revision = "0007_trigram_function_costs"
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


def _rebuild(key: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, expression in INDEXES:
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({key.format(expression)} gin_trgm_ops)")
    # Statistics of an index expression come only from ANALYZE, and autovacuum runs it only after
    # many rows change: without this the planner guesses, and read all 100k contacts to answer
    # "does any contact hold this word?" (103 ms instead of 2, docs/benchmarks.md).
    op.execute("ANALYZE " + ", ".join(sorted({table for _, table, _ in INDEXES})))


def upgrade():
    _rebuild("lower({})")


def downgrade():
    _rebuild("lower(coalesce({}, ''))")

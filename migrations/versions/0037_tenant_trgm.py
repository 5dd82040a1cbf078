"""The search's trigram indexes lead with org_id, so a search reads only its organisation's matches.

The trigram GIN indexes of migrations 0008 and 0009 held every organisation's rows and no org_id:
a search's bitmap collected the matches of all organisations before it was ANDed with its own, so
a small organisation's "typo of the commonest last name" read 21,445 rows and index entries next
to a thousand others against 1,000 alone (docs/benchmarks.md, "Many tenants"). With org_id as the
first column (btree_gin, already created by 0012 for the search vocabulary's index) the index scan
itself keeps to the organisation. The expressions are unchanged: the searches match them exactly
(models/mixins.search_key). The custom text fields' trigram indexes are partial to their
organisation already (0030). PostgreSQL only, like 0003, 0008 and 0009.

Revision ID: 0037_tenant_trgm
Revises: 0035_tenant_stats
"""

from alembic import op

revision = "0037_tenant_trgm"
down_revision = "0035_tenant_stats"
branch_labels = None
depends_on = None

FULL_NAME = "(first_name || ' ') || last_name"
INDEXES = [
    ("contact_name_trgm_idx", "contacts", FULL_NAME),
    ("contact_email_trgm_idx", "contacts", "email"),
    ("company_name_trgm_idx", "companies", "name"),
    ("company_industry_trgm_idx", "companies", "industry"),
    ("company_city_trgm_idx", "companies", "city"),
    ("company_website_trgm_idx", "companies", "website"),
    ("lead_name_trgm_idx", "leads", FULL_NAME),
    ("lead_email_trgm_idx", "leads", "email"),
    ("lead_company_trgm_idx", "leads", "company_name"),
    ("deal_name_trgm_idx", "deals", "name"),
]


def _rebuild(columns: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for name, table, expression in INDEXES:
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({columns}lower({expression}) gin_trgm_ops)")
    # An expression index's statistics come only from ANALYZE (as in 0008).
    op.execute("ANALYZE " + ", ".join(sorted({table for _, table, _ in INDEXES})))


def upgrade():
    _rebuild("org_id, ")


def downgrade():
    _rebuild("")

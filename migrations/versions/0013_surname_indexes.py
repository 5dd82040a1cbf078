"""Btree indexes of people by last name, then name in byte order, so a common surname is read, not ranked.

The global search ranks a person whose last name is the query right after the names that start
with it. A common surname was every one of its rows to fetch, rank and sort for five ("williams":
1,600 contacts, 10 ms for that one statement at L, and the same again for a typo of it); in
(org_id, lower(last_name), lower(name) COLLATE "C") the first five are five index entries
(0.1 ms). Partial (live rows), PostgreSQL only, declared with models/mixins.surname_index.

Revision ID: 0013_surname_indexes
Revises: 0012_search_words
"""

from alembic import op

revision = "0013_surname_indexes"
down_revision = "0012_search_words"
branch_labels = None
depends_on = None

INDEXES = [("contact_surname_idx", "contacts"), ("lead_surname_idx", "leads")]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in INDEXES:
        op.execute(
            f"CREATE INDEX {name} ON {table} (org_id, lower(last_name), "
            f"(lower((first_name || ' ') || last_name) COLLATE \"C\")) WHERE deleted_at IS NULL"
        )
        op.execute(f"ANALYZE {table}")  # expression statistics come only from ANALYZE (see 0008)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in reversed(INDEXES):
        op.drop_index(name, table_name=table)

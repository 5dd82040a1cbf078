"""SQLite only: indexes of the live contacts, companies, leads and deals in name order, and of the
live contacts and leads by last name then name, for the global search.

The global search reads the names that start with the query, then the people whose last name is
the query, in name order, stopping after a page (services/search.py). PostgreSQL has indexes for
that since migrations 0011 and 0013, on lower(name) COLLATE "C", which SQLite cannot build; without
them SQLite ranked every live row of the organisation for each step, and the global search at
10,000 contacts missed its target. These hold (lower(name), org_id, id) and (lower(last name),
org_id, lower(name), id) of the live rows: on SQLite lower(name) is the search's name order already
(models/mixins.name_order_key). The name leads so that no other statement's plan on org_id turns
to them (models/mixins.sqlite_name_order_index). Declared in the models.

Revision ID: 0033_sqlite_search
Revises: 0030_custom_field_trgm
"""

import sqlalchemy as sa
from alembic import op

revision = "0033_sqlite_search"
down_revision = "0030_custom_field_trgm"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
FULL_NAME = "lower((first_name || ' ') || last_name)"
INDEXES = (
    ("contact_name_order_sqlite_idx", "contacts", (FULL_NAME, "org_id")),
    ("contact_surname_sqlite_idx", "contacts", ("lower(last_name)", "org_id", FULL_NAME)),
    ("company_name_order_sqlite_idx", "companies", ("lower(name)", "org_id")),
    ("lead_name_order_sqlite_idx", "leads", (FULL_NAME, "org_id")),
    ("lead_surname_sqlite_idx", "leads", ("lower(last_name)", "org_id", FULL_NAME)),
    ("deal_name_order_sqlite_idx", "deals", ("lower(name)", "org_id")),
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if not _sqlite():
        return
    for name, table, keys in INDEXES:
        op.create_index(name, table, [*map(sa.text, keys), "id"], sqlite_where=LIVE)


def downgrade():
    if not _sqlite():
        return
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

"""A btree index of the live contacts by last name in the list's order, for a searched list.

A searched contact list shows the people whose last name is the query (rank 2) in the list's order,
last name then first name (BaseService._searched_page). The surname index (0013) holds them in the
global search's byte order of the whole name, so a common surname's page was every one of its rows
fetched and sorted; in (org_id, lower(last_name), last_name, first_name, id) the equality on
lower(last_name) leaves them in the list's order, and a page is as many index entries. Partial (live
rows), PostgreSQL only, declared in the models (models/contact.py).

Revision ID: 0040_xl_search
Revises: 0039_xl_plans
"""

from alembic import op

revision = "0040_xl_search"
down_revision = "0039_xl_plans"
branch_labels = None
depends_on = None

NAME = "contact_surname_list_idx"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE INDEX {NAME} ON contacts (org_id, lower(last_name), last_name, first_name, id) "
        "WHERE deleted_at IS NULL"
    )
    op.execute("ANALYZE contacts")  # expression statistics come only from ANALYZE (see 0008)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="contacts")

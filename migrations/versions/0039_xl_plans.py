"""A partial index of the live contacts by status then city.

The contact list filtered by status and a city substring counts its total up to LIST_COUNT_BOUND
(services/pagination.bounded_count): the status index gave the candidates, but the city's ILIKE
was tested on each candidate's row, read from the table, until 10,000 matched (at XL about 50,000
rows, most of them outside shared buffers). With the city in the index the count is an index-only
scan that tests the ILIKE on the index entries. Declared in the models (Contact.__table_args__).

Revision ID: 0039_xl_plans
Revises: 0034_served_l
"""

import sqlalchemy as sa
from alembic import op

revision = "0039_xl_plans"
down_revision = "0034_served_l"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
NAME = "ix_contacts_org_status_city_live"


def upgrade():
    op.create_index(NAME, "contacts", ["org_id", "status", "city"], postgresql_where=LIVE, sqlite_where=LIVE)


def downgrade():
    op.drop_index(NAME, table_name="contacts")

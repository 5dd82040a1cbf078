"""Cache versions on each organisation: a cached value can no longer outlive the write that changed it.

The pipeline cache and the statistics caches were invalidated by deleting Redis keys (or bumping a
generation kept in Redis) after the commit; a Redis that hung at that moment dropped the
invalidation, and the old value came back when Redis did. Now each key carries a version read from
these columns (free in a signed-in request: the user loader loads the organisation row), and the
commit that writes a domain sets a new random version in the same transaction
(crm_web/services/cache_versions.py).

Revision ID: 0015_cache_versions
Revises: 0013_surname_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_cache_versions"
down_revision = "0013_surname_indexes"
branch_labels = None
depends_on = None

COLUMNS = ("pipelines_cache_version", "deals_cache_version", "activities_cache_version")


def upgrade():
    with op.batch_alter_table("organizations") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("organizations") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)

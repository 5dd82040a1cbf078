"""A cache epoch on each organisation: a cached value can no longer outlive a change the cache missed.

The pipeline cache and the statistics caches were invalidated after the commit by deleting Redis
keys (or storing a new generation in Redis); a Redis that hung or was cut off at that moment lost
the invalidation, and the old value came back with Redis. Now every key also carries this epoch,
which changes whenever an invalidation could not be stored (crm_web/services/cache_versions.py); it
costs no statement to read in a signed-in request (the user loader loads the organisation's row).

Revision ID: 0015_cache_versions
Revises: 0013_surname_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_cache_versions"
down_revision = "0014_accounts"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("cache_epoch", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("cache_epoch")

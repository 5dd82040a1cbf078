"""Deal rotting: a stage's optional "rotting after N days", and every deal's time in its stage.

`pipeline_stages.rotting_days` (NULL: the stage never rots). `deals.stage_changed_at` existed but
older rows could lack it: they get the time of their last board move recorded in the history, else
their creation time, so "days in stage" is never blank. Plain ADD COLUMN (no batch copy on SQLite),
so the tally triggers on both tables stay in place.

Revision ID: 0023_rotting
Revises: 0018_currencies
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_rotting"
down_revision = "0022_notifications"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("pipeline_stages", sa.Column("rotting_days", sa.Integer(), nullable=True))
    op.execute(
        """
        UPDATE deals SET stage_changed_at = COALESCE(
            (SELECT max(h.created_at) FROM record_history h
              WHERE h.org_id = deals.org_id AND h.entity_type = 'deal' AND h.entity_id = deals.id
                AND h.action = 'moved'),
            deals.created_at)
        WHERE stage_changed_at IS NULL AND stage_id IS NOT NULL
        """
    )


def downgrade():
    with op.batch_alter_table("pipeline_stages", recreate="never") as batch:
        batch.drop_column("rotting_days")

"""Notifications and each user's reminder settings.

`notifications` is a tenant table (org_id, the row-level security policy like every other); a
reminder carries a dedupe key, unique per user, so that it is stored once whoever computes it first.
Users gain `reminder_minutes` (how long before an activity's due time to remind, default 15) and
`muted_notifications` (the kinds they turned off).

Revision ID: 0022_notifications
Revises: 0018_currencies
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_notifications"
down_revision = "0021_duplicates"
branch_labels = None
depends_on = None

CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"


def upgrade():
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_notifications_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_notifications_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_dedupe"),
    )
    op.create_index(op.f("ix_notifications_org_id"), "notifications", ["org_id"])
    op.create_index("ix_notifications_user_created", "notifications", ["user_id", "created_at"])
    op.create_index("ix_notifications_user_read", "notifications", ["user_id", "read_at"])
    if op.get_bind().dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        op.execute("ALTER TABLE notifications ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON notifications USING ({condition}) WITH CHECK ({condition})")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("reminder_minutes", sa.Integer(), nullable=False, server_default="15"))
        batch.add_column(sa.Column("muted_notifications", sa.String(length=200), nullable=False, server_default=""))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("muted_notifications")
        batch.drop_column("reminder_minutes")
    op.drop_index("ix_notifications_user_read", table_name="notifications")
    op.drop_index("ix_notifications_user_created", table_name="notifications")
    op.drop_index(op.f("ix_notifications_org_id"), table_name="notifications")
    op.drop_table("notifications")

"""Accounts: revocable sessions, one-time password links, organisation settings, deletable tags.

- users.session_version: part of every session and remember cookie; bumping it ends them all.
- users.must_change_password: an admin chose the password, the user picks their own at first sign-in.
- A unique index on lower(email): one account per email across the product, whatever its case.
- user_tokens: invitation and reset links (the token's SHA-256 only), each bound to its user (no
  org_id of its own). Like `users`, no row-level security policy: the link is opened before anyone
  is signed in, and found by its hash alone.
- organizations: default currency, time zone, trash retention, when the stages were reviewed.
- tags: soft delete (deleted_at, deleted_by_id), so deleting a tag can be undone.

Revision ID: 0014_accounts
Revises: 0013_surname_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_accounts"
down_revision = "0013_surname_indexes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("default_currency", sa.String(length=3), server_default="USD", nullable=False))
        batch.add_column(sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False))
        batch.add_column(sa.Column("trash_retention_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stages_reviewed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index("uq_users_email_key", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "user_tokens",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_user_tokens_created_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_tokens_token_hash")),
    )
    op.create_index(op.f("ix_user_tokens_user_id"), "user_tokens", ["user_id"], unique=False)
    op.add_column("tags", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    # No foreign key on deleted_by_id (users are deactivated, never deleted): SQLite could add one
    # only by rebuilding `tags`, whose drop would cascade into the tag link tables.
    op.add_column("tags", sa.Column("deleted_by_id", sa.Uuid(), nullable=True))


def downgrade():
    with op.batch_alter_table("tags") as batch:
        batch.drop_column("deleted_by_id")
        batch.drop_column("deleted_at")
    op.drop_index(op.f("ix_user_tokens_user_id"), table_name="user_tokens")
    op.drop_table("user_tokens")
    op.drop_index("uq_users_email_key", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
        batch.drop_column("session_version")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("stages_reviewed_at")
        batch.drop_column("trash_retention_days")
        batch.drop_column("time_zone")
        batch.drop_column("default_currency")

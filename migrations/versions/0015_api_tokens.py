"""Internal API tokens: hashed, scoped to endpoints and organisations, rotatable with an overlap.

Replaces the single CRM_INTERNAL_TOKEN that read and wrote every organisation's figures
(crm_web/services/api_tokens.py; import an existing value with `flask crm api-token create --from-env`).

Revision ID: 0015_api_tokens
Revises: 0015_cache_versions
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_api_tokens"
down_revision = "0015_cache_versions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("org_ids", sa.JSON(), nullable=False),
        sa.Column("all_orgs", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )


def downgrade():
    op.drop_table("api_tokens")

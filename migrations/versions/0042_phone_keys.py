"""The live contacts, leads and companies of an organisation by the key of their phone number, the
companies by their case-folded email, and the live leads by owner and status.

A form's duplicate warning (and the lead conversion page) looks for records whose phone key (the
last ten digits, services/duplicates/matching.py) is that of the number being typed. It narrowed
by the last four digits with LIKE '%1234%', which no index serves: every live record of the
organisation was read, each time. These indexes hold the key itself (models/mixins.py
phone_key_index: the same expression), so the lookup is an index range. Partial (live rows),
PostgreSQL only, declared in the models. The warning's conditions are ORed, so one without an index
reads every row all the same: companies get the (org_id, lower(email)) index contacts and leads
have (both engines).

The users list counts each user's open leads: with the live leads by (org_id, owner_id, status)
that is an index-only count of the user's entries, not every lead of theirs read from the table
(both engines).

Revision ID: 0042_phone_keys
Revises: 0041_xl_board
"""

import sqlalchemy as sa
from alembic import op

revision = "0042_phone_keys"
down_revision = "0041_xl_board"
branch_labels = None
depends_on = None

INDEXES = {"contacts": "contact_phone_key_idx", "leads": "lead_phone_key_idx", "companies": "company_phone_key_idx"}
KEY = "right(translate(phone, translate(phone, '0123456789', ''), ''), 10)"


def upgrade():
    op.create_index("ix_companies_org_email_key", "companies", ["org_id", sa.text("lower(email)")])
    op.create_index(
        "ix_leads_org_owner_id_status_live",
        "leads",
        ["org_id", "owner_id", "status"],
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} (org_id, {KEY}) WHERE deleted_at IS NULL")
        op.execute(f"ANALYZE {table}")  # expression statistics come only from ANALYZE (see 0008)


def downgrade():
    op.drop_index("ix_companies_org_email_key", table_name="companies")
    op.drop_index("ix_leads_org_owner_id_status_live", table_name="leads")
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name in INDEXES.items():
        op.drop_index(name, table_name=table)

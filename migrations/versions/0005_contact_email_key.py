"""An index on each contact's case-folded email, per organisation.

The contact page's "same email as" hint and the form's live duplicate-email warning compare
lower(email); without this index each of them scanned every contact of the organisation
(~150 ms at 100k contacts, docs/benchmarks.md). An expression index, so both engines get it.

Revision ID: 0005_contact_email_key
Revises: 0004_list_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_contact_email_key"
down_revision = "0004_list_indexes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_contacts_org_email_key", "contacts", ["org_id", sa.text("lower(email)")])


def downgrade():
    op.drop_index("ix_contacts_org_email_key", table_name="contacts")

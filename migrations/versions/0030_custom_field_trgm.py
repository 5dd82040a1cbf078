"""Trigram indexes on the organisations' custom text fields, which the global search looks in.

The global search matches lower(custom ->> 'key') ILIKE '%word%' for every custom text field
(text, long text, URL, email) of the type it searches, OR-ed with the built-in searched columns.
Each field had only its btree index (filters and sorts), so one such field turned every OR-ed
condition into a read of all the organisation's rows. The app now creates, with each text field, a
trigram GIN index on exactly that expression, partial to the organisation's live rows like the
field's own index (services/custom_fields.create_index, `cf_<org>_<field id>_trgm`); this creates it
for the fields defined before. PostgreSQL only, like the fields' other indexes. Frozen here rather
than calling the service: the migration must keep building the same indexes whatever the app
becomes.

Revision ID: 0030_custom_field_trgm
Revises: 0031_calendar_index
"""

import re
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0030_custom_field_trgm"
down_revision = "0031_calendar_index"
branch_labels = None
depends_on = None

TABLES = {"contact": "contacts", "company": "companies", "lead": "leads", "deal": "deals"}
TEXT_TYPES = ("text", "long_text", "url", "email")
KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
FIELD_ID = re.compile(r"[0-9a-f]{1,32}")


def _text_fields():
    """(index name, table, org id, key) of every live custom text field."""
    rows = op.get_bind().execute(sa.text("SELECT id, custom_fields FROM organizations WHERE custom_fields IS NOT NULL"))
    for org_id, schema in rows:
        org_id = uuid.UUID(str(org_id))
        for entity_name, table in TABLES.items():
            for field in (schema or {}).get(entity_name) or []:
                key, field_id = str(field.get("key") or ""), str(field.get("id") or "")
                if field.get("deleted_at") or field.get("type", "text") not in TEXT_TYPES:
                    continue
                if KEY.fullmatch(key) and FIELD_ID.fullmatch(field_id):  # inlined below: never other text
                    yield f"cf_{org_id.hex[:12]}_{field_id}_trgm", table, org_id, key


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    tables = set()
    for name, table, org_id, key in _text_fields():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS \"{name}\" ON {table} USING gin ((lower((custom ->> '{key}'))) gin_trgm_ops) "
            f"WHERE org_id = '{org_id}' AND deleted_at IS NULL"
        )
        tables.add(table)
    if tables:
        # An expression index's statistics come only from ANALYZE (as in 0008).
        op.execute("ANALYZE " + ", ".join(sorted(tables)))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _, _, _ in _text_fields():
        op.execute(f'DROP INDEX IF EXISTS "{name}"')

"""A partial index of each owner's open live deals in the order My day lists them, and statistics on
the custom fields' indexed values.

My day (services/my_day.py) shows the user's open deals closing this week or rotting in their stage,
by expected close date, at most 50. The deals' other indexes lead with the status or the stage, so
at L it read every open deal of the organisation (several thousand rows, 50-80 ms on a busy machine)
to keep one owner's. This one holds (org_id, owner_id, expected_close_date, stage_changed_at, id,
stage_id) of the open live deals: the page's ids are read from it alone, in order, with the stage's
rotting limit joined (an index-only scan), and only the 50 shown rows are read whole. Declared in
the models (Deal.__table_args__).

A custom field's btree index is partial (one organisation's live rows), and PostgreSQL takes no
selectivity from a partial index's statistics: a condition on a field was guessed to keep 0.5% of
the rows, so the board filtered by a field read every matching deal of the organisation for each
column of 20 instead of walking the column in order. Each such field now has extended statistics on
the same expression over the whole table (services/custom_fields.create_index, `cf_<org>_<field
id>_stats`); this creates them for the fields defined before, and analyzes the tables to fill them.
Frozen here rather than calling the service, like 0030. PostgreSQL only.

Revision ID: 0034_served_l
Revises: 0030_custom_field_trgm
"""

import re
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0034_served_l"
down_revision = "0037_tenant_trgm"
branch_labels = None
depends_on = None

OPEN_LIVE = sa.text("status = 'open' AND deleted_at IS NULL")
NAME = "ix_deals_org_owner_open_close_live"
COLUMNS = ["org_id", "owner_id", "expected_close_date", "stage_changed_at", "id", "stage_id"]

TABLES = {"contact": "contacts", "company": "companies", "lead": "leads", "deal": "deals"}
KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
FIELD_ID = re.compile(r"[0-9a-f]{1,32}")


def _expression(field_type: str, key: str) -> str | None:
    """The field's btree index expression (custom_fields.index_expression at this revision)."""
    value = f"(custom ->> '{key}')"
    if field_type in ("number", "money"):
        return f"(CAST({value} AS NUMERIC))"
    if field_type == "checkbox":
        return f"(CAST({value} AS BOOLEAN))"
    if field_type == "multi_select":
        return None  # a GIN index
    return f"({value})"


def _fields():
    """(statistics name, table, expression) of every live custom field with a btree index."""
    rows = op.get_bind().execute(sa.text("SELECT id, custom_fields FROM organizations WHERE custom_fields IS NOT NULL"))
    for org_id, schema in rows:
        org_id = uuid.UUID(str(org_id))
        for entity_name, table in TABLES.items():
            for field in (schema or {}).get(entity_name) or []:
                key, field_id = str(field.get("key") or ""), str(field.get("id") or "")
                if field.get("deleted_at") or not (KEY.fullmatch(key) and FIELD_ID.fullmatch(field_id)):
                    continue  # inlined below: never other text
                expression = _expression(str(field.get("type", "text")), key)
                if expression is not None:
                    yield f"cf_{org_id.hex[:12]}_{field_id}_stats", table, expression


def upgrade():
    op.create_index(NAME, "deals", COLUMNS, postgresql_where=OPEN_LIVE, sqlite_where=OPEN_LIVE)
    if op.get_bind().dialect.name != "postgresql":
        return
    tables = set()
    for name, table, expression in _fields():
        op.execute(f'CREATE STATISTICS IF NOT EXISTS "{name}" ON {expression} FROM {table}')
        tables.add(table)
    if tables:
        op.execute("ANALYZE " + ", ".join(sorted(tables)))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, _, _ in _fields():
            op.execute(f'DROP STATISTICS IF EXISTS "{name}"')
    op.drop_index(NAME, table_name="deals")

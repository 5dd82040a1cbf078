"""A partial index of the live contacts by status then city, and the custom fields' btree indexes
ending with the row id.

The contact list filtered by status and a city substring counts its total up to LIST_COUNT_BOUND
(services/pagination.bounded_count): the status index gave the candidates, but the city's ILIKE
was tested on each candidate's row, read from the table, until 10,000 matched (at XL about 150,000
rows read). With the city in the index the count is an index-only scan that tests the ILIKE on the
index entries. Declared in the models (Contact.__table_args__).

A list sorted by a custom field orders by the field's value, then by the row id
(BaseService.sort_clause, the id in the sort's direction). The field's btree index held the value
alone, so the rows sharing a value were sorted whole before the page was cut: a deal list sorted by
"seats" descending starts with the deals without seats, and read all of them (a fifth of the deals)
for its first 25. Each live field's btree index (services/custom_fields.create_index) now ends with
the id; this rebuilds those of the fields defined before. Frozen here rather than calling the
service, like 0030 and 0034. PostgreSQL only.

Revision ID: 0039_xl_plans
Revises: 0038_duplicate_groups
"""

import re
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0039_xl_plans"
down_revision = "0038_duplicate_groups"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
NAME = "ix_contacts_org_status_city_live"

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
    """(org id, index name, table, expression) of every live custom field with a btree index."""
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
                    yield org_id, f"cf_{org_id.hex[:12]}_{field_id}", table, expression


def _rebuild(with_id: bool) -> None:
    for org_id, name, table, expression in list(_fields()):
        columns = f"{expression}, id" if with_id else expression
        op.execute(f'DROP INDEX IF EXISTS "{name}"')
        op.execute(
            f'CREATE INDEX "{name}" ON {table} USING btree ({columns}) '
            f"WHERE org_id = '{org_id}' AND deleted_at IS NULL"
        )


def upgrade():
    op.create_index(NAME, "contacts", ["org_id", "status", "city"], postgresql_where=LIVE, sqlite_where=LIVE)
    if op.get_bind().dialect.name == "postgresql":
        _rebuild(with_id=True)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _rebuild(with_id=False)
    op.drop_index(NAME, table_name="contacts")

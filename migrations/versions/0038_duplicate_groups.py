"""A stored duplicate scan's groups as rows: `duplicate_scan_groups` (one per group, by position, best
first) and `duplicate_scan_members` (which group holds a record), instead of one JSON document of
every group that each page request read and decoded whole (tens of thousands of groups in a large
organisation). A page is now a range of the groups' primary key; `group=<record id>` and "Not a
duplicate" find a group through its members. `duplicate_scans` gains `group_count` (the groups
stored) and `dismissed` (positions of the groups "Not a duplicate" removed since the scan).

Both tables are tenant tables (org_id leads their primary keys; the row-level security policy like
every other).

The scans stored before are carried over: their groups become rows in their order, less those every
pair of which was dismissed since (what the page left out when reading them), so the page shows
what it showed before without a new scan. Then the JSON column goes (nothing else reads it).
Frozen here (no import of the services), as the other data migrations.

Revision ID: 0038_duplicate_groups
Revises: 0034_served_l
"""

import uuid
from itertools import combinations

import sqlalchemy as sa
from alembic import op

revision = "0038_duplicate_groups"
down_revision = "0034_served_l"
branch_labels = None
depends_on = None

CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"
TABLES = ("duplicate_scan_groups", "duplicate_scan_members")
BATCH = 5000

scans = sa.table(
    "duplicate_scans",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("entity_type", sa.String()),
    sa.column("groups", sa.JSON()),
    sa.column("group_count", sa.Integer()),
    sa.column("dismissed", sa.JSON()),
)
groups_table = sa.table(
    "duplicate_scan_groups",
    sa.column("org_id", sa.Uuid()),
    sa.column("entity_type", sa.String()),
    sa.column("position", sa.Integer()),
    sa.column("score", sa.Integer()),
    sa.column("ids", sa.JSON()),
    sa.column("reasons", sa.JSON()),
)
members_table = sa.table(
    "duplicate_scan_members",
    sa.column("org_id", sa.Uuid()),
    sa.column("entity_type", sa.String()),
    sa.column("record_id", sa.Uuid()),
    sa.column("position", sa.Integer()),
)
dismissals = sa.table(
    "duplicate_dismissals",
    sa.column("org_id", sa.Uuid()),
    sa.column("entity_type", sa.String()),
    sa.column("first_id", sa.Uuid()),
    sa.column("second_id", sa.Uuid()),
)


def _kept(ids, pairs):
    """services/duplicates/service._kept at this revision: not every pair of the group dismissed."""
    in_pairs = {i for pair in pairs for i in pair}
    return not (
        all(i in in_pairs for i in ids) and all(((a, b) if a < b else (b, a)) in pairs for a, b in combinations(ids, 2))
    )


def _insert(bind, table, rows):
    for start in range(0, len(rows), BATCH):
        bind.execute(table.insert(), rows[start : start + BATCH])


def upgrade():
    for name, key in (("duplicate_scan_groups", "position"), ("duplicate_scan_members", "record_id")):
        columns = [
            sa.Column("org_id", sa.Uuid(), nullable=False),
            sa.Column("entity_type", sa.String(length=30), nullable=False),
        ]
        if key == "position":
            columns += [
                sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
                sa.Column("score", sa.Integer(), nullable=False),
                sa.Column("ids", sa.JSON(), nullable=False),
                sa.Column("reasons", sa.JSON(), nullable=False),
            ]
        else:
            columns += [
                sa.Column("record_id", sa.Uuid(), nullable=False),
                sa.Column("position", sa.Integer(), nullable=False),
            ]
        op.create_table(
            name,
            *columns,
            sa.ForeignKeyConstraint(
                ["org_id"], ["organizations.id"], name=op.f(f"fk_{name}_org_id_organizations"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("org_id", "entity_type", key, name=op.f(f"pk_{name}")),
        )
    op.add_column("duplicate_scans", sa.Column("group_count", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("duplicate_scans", sa.Column("dismissed", sa.JSON(), nullable=False, server_default="[]"))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        condition = f"org_id = {CURRENT_ORG}"
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition})")
    # The stored scans, one at a time (one can hold tens of thousands of groups).
    for scan_id, org_id, entity_type in bind.execute(sa.select(scans.c.id, scans.c.org_id, scans.c.entity_type)).all():
        stored = bind.scalar(sa.select(scans.c.groups).where(scans.c.id == scan_id)) or []
        pairs = {
            (str(a), str(b)) if str(a) < str(b) else (str(b), str(a))
            for a, b in bind.execute(
                sa.select(dismissals.c.first_id, dismissals.c.second_id).where(
                    dismissals.c.org_id == org_id, dismissals.c.entity_type == entity_type
                )
            )
        }
        kept = [group for group in stored if _kept(group["ids"], pairs)] if pairs else stored
        rows, members = [], []
        for position, group in enumerate(kept):
            rows.append(
                {
                    "org_id": org_id,
                    "entity_type": entity_type,
                    "position": position,
                    "score": int(group["score"]),
                    "ids": list(group["ids"]),
                    "reasons": list(group["reasons"]),
                }
            )
            members.extend(
                {"org_id": org_id, "entity_type": entity_type, "record_id": uuid.UUID(i), "position": position}
                for i in group["ids"]
            )
        _insert(bind, groups_table, rows)
        _insert(bind, members_table, members)
        bind.execute(sa.update(scans).where(scans.c.id == scan_id).values(group_count=len(rows)))
    with op.batch_alter_table("duplicate_scans", recreate="never") as batch:
        batch.drop_column("groups")


def downgrade():
    op.add_column("duplicate_scans", sa.Column("groups", sa.JSON(), nullable=False, server_default="[]"))
    bind = op.get_bind()
    for scan_id, org_id, entity_type in bind.execute(sa.select(scans.c.id, scans.c.org_id, scans.c.entity_type)).all():
        rows = bind.execute(
            sa.select(groups_table.c.ids, groups_table.c.score, groups_table.c.reasons)
            .where(groups_table.c.org_id == org_id, groups_table.c.entity_type == entity_type)
            .order_by(groups_table.c.position)
        )
        document = [{"ids": list(ids), "score": score, "reasons": list(reasons)} for ids, score, reasons in rows]
        bind.execute(sa.update(scans).where(scans.c.id == scan_id).values(groups=document))
    with op.batch_alter_table("duplicate_scans", recreate="never") as batch:
        batch.drop_column("dismissed")
        batch.drop_column("group_count")
    op.drop_table("duplicate_scan_members")
    op.drop_table("duplicate_scan_groups")

"""The vocabulary of each organisation's searched names, kept by triggers, for the typo search.

The typo tier scored every row sharing a few trigrams with the query ("smiht": all 1,611 Smiths
of 100k contacts, 63 ms for the global search at L; "jonh smiht" 111 ms). It now corrects the
query's words against this table's distinct words (about a thousand at L, 0.1 ms) and runs the
exact search with them (models/search_word.py, services/text_search.py).

PostgreSQL: AFTER triggers on the four searched tables:
- INSERT (per statement, over the transition table: one INSERT whatever the write's size): add the
  rows' words the organisation does not have yet;
- UPDATE of a searched column (per changed row; a board move, a bulk status change or a soft
  delete costs nothing): add the new words, drop the old ones no row contains any more;
- DELETE (per statement; a purge: soft delete keeps the words, the record can come back): drop the
  deleted rows' words that no remaining row's searched text contains.
So neither a permanently deleted record nor a record's former name leaves a word behind. A word
inside another row's text stays (one trigram index lookup per search key), and so may a word that
a purge checks while another transaction inserts it (the purge cannot see the new row yet).
A word is a run of letters, apostrophes and hyphens, and each hyphenated part on its own
("o'brien-hale", "o'brien", "hale"), trimmed of apostrophes and hyphens, 3-50 characters, lower
case: the same lower() the search keys use, so every word is a substring of a search key and the
exact tier's ILIKE finds its rows. Letters are the database's: its ctype must know them (any
UTF-8 locale; under the C ctype "seán" would split). Row-level security like every tenant table;
the lookup index leads with org_id (btree_gin, a trusted extension shipped with PostgreSQL like
pg_trgm), so one organisation's lookup never reads another's words. SQLite gets the table and its
indexes only (its search has no typo tier). The SQL is in migrations/sql/0012_search_words_postgresql.sql,
frozen with this migration; tests/test_database_sql.py ties it to the schema and to the searched columns.

Revision ID: 0012_search_words
Revises: 0011_name_order_indexes
"""

import sqlalchemy as sa
from alembic import op

from crm_web.sql_files import execute_file

revision = "0012_search_words"
down_revision = "0011_name_order_indexes"
branch_labels = None
depends_on = None

# The searched tables (their triggers are dropped by name on downgrade).
SEARCHED_TABLES = ("contacts", "leads", "companies", "deals")


def upgrade():
    op.create_table(
        "search_words",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("word", sa.String(length=50), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_words")),
    )
    op.create_index("ix_search_words_org_word", "search_words", ["org_id", "word"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.create_index(
        "search_word_trgm_idx",
        "search_words",
        ["org_id", "word"],
        postgresql_using="gin",
        postgresql_ops={"word": "gin_trgm_ops"},
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    # The policy, triggers and today's words: migrations/sql/0012_search_words_postgresql.sql.
    execute_file(op, revision)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in SEARCHED_TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_search_words_{event} ON {table}")
            for function in ("add", "change"):
                op.execute(f"DROP FUNCTION {table}_search_words_{function}()")
    op.drop_index("search_word_trgm_idx", table_name="search_words")
    op.drop_index("ix_search_words_org_word", table_name="search_words")
    op.drop_table("search_words")

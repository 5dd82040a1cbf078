"""The vocabulary of each organisation's searched names, kept by triggers, for the typo search.

The typo tier scored every row sharing a few trigrams with the query ("smiht": all 1,611 Smiths
of 100k contacts, 63 ms for the global search at L; "jonh smiht" 111 ms). It now corrects the
query's words against this table's distinct words (about a thousand at L, 0.1 ms) and runs the
exact search with them (models/search_word.py, services/text_search.py).

PostgreSQL: statement-level AFTER INSERT and AFTER UPDATE triggers on the four searched tables add
the words of the written rows that the organisation does not have yet (one INSERT per statement,
whatever its size). A word is a run of letters, apostrophes and hyphens, trimmed of the last two,
3-50 characters, lower case: the same lower() the search keys use, so every word is a substring of
a search key and the exact tier's ILIKE finds its rows. Row-level security like every tenant
table. SQLite gets the table and its indexes only (its search has no typo tier).

Revision ID: 0012_search_words
Revises: 0011_name_order_indexes
"""
from alembic import op
import sqlalchemy as sa


revision = "0012_search_words"
down_revision = "0011_name_order_indexes"
branch_labels = None
depends_on = None

SYSTEM_CONTEXT = "coalesce(current_setting('app.current_org', true), '') = ''"
CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"

# Each searched table and the columns its searches match (services' SEARCH_COLUMNS and search.SEARCHED).
SEARCHED_COLUMNS = {
    "contacts": ("first_name", "last_name", "email"),
    "leads": ("first_name", "last_name", "email", "company_name"),
    "companies": ("name", "industry", "city", "website"),
    "deals": ("name",),
}


def _words(rows: str, columns: tuple[str, ...]) -> str:
    """SELECT org_id, word of every word in `rows` (a table or a transition table) the org lacks."""
    text = f"lower(concat_ws(' ', {', '.join(f'r.{column}' for column in columns)}))"
    return (f"SELECT DISTINCT r.org_id, w.word FROM {rows} r "
            f"CROSS JOIN LATERAL (SELECT btrim(token, '''-') AS word "
            f"FROM regexp_split_to_table({text}, '[^[:alpha:]''-]+') AS token) w "
            f"WHERE length(w.word) BETWEEN 3 AND 50 "
            f"AND NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = r.org_id AND s.word = w.word)")


def upgrade():
    op.create_table(
        "search_words",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("word", sa.String(length=50), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_words")),
    )
    op.create_index("ix_search_words_org_word", "search_words", ["org_id", "word"])
    op.create_index("search_word_trgm_idx", "search_words", ["word"], postgresql_using="gin",
                    postgresql_ops={"word": "gin_trgm_ops"})
    if op.get_bind().dialect.name != "postgresql":
        return
    condition = f"({SYSTEM_CONTEXT} OR org_id = {CURRENT_ORG})"
    op.execute("ALTER TABLE search_words ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE search_words FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON search_words USING {condition} WITH CHECK {condition}")
    for table, columns in SEARCHED_COLUMNS.items():
        op.execute(f"""
            CREATE FUNCTION {table}_search_words() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO search_words (org_id, word) {_words('new_rows', columns)};
                RETURN NULL;
            END $$""")
        for event in ("INSERT", "UPDATE"):
            op.execute(f"CREATE TRIGGER {table}_search_words_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_search_words()")
    # Today's words, in one INSERT: the NOT EXISTS of each SELECT sees none of the others' words, the UNION
    # keeps one of each.
    everything = " UNION ".join(_words(table, columns) for table, columns in SEARCHED_COLUMNS.items())
    op.execute(f"INSERT INTO search_words (org_id, word) {everything}")
    op.execute("ANALYZE search_words")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in SEARCHED_COLUMNS:
            for event in ("insert", "update"):
                op.execute(f"DROP TRIGGER {table}_search_words_{event} ON {table}")
            op.execute(f"DROP FUNCTION {table}_search_words()")
    op.drop_index("search_word_trgm_idx", table_name="search_words")
    op.drop_index("ix_search_words_org_word", table_name="search_words")
    op.drop_table("search_words")

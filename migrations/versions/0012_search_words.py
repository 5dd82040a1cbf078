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
indexes only (its search has no typo tier).

Revision ID: 0012_search_words
Revises: 0011_name_order_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_search_words"
down_revision = "0011_name_order_indexes"
branch_labels = None
depends_on = None

SYSTEM_CONTEXT = "coalesce(current_setting('app.current_org', true), '') = ''"
CURRENT_ORG = "nullif(current_setting('app.current_org', true), '')::uuid"

# Each searched table: the columns its searches match (services' SEARCH_COLUMNS and search.SEARCHED),
# and the search keys (models/mixins.search_key) its trigram indexes serve.
SEARCHED = {
    "contacts": (
        ("first_name", "last_name", "email"),
        ("lower((x.first_name || ' ') || x.last_name)", "lower(x.email)"),
    ),
    "leads": (
        ("first_name", "last_name", "email", "company_name"),
        ("lower((x.first_name || ' ') || x.last_name)", "lower(x.email)", "lower(x.company_name)"),
    ),
    "companies": (
        ("name", "industry", "city", "website"),
        ("lower(x.name)", "lower(x.industry)", "lower(x.city)", "lower(x.website)"),
    ),
    "deals": (("name",), ("lower(x.name)",)),
}
APOSTROPHES = "''’"  # SQL-quoted: ' and ’


def _words_of(rows: str, columns: tuple[str, ...]) -> str:
    """SELECT DISTINCT org_id, word of every word of `rows` (a table or a transition table, alias r)."""
    text = f"lower(concat_ws(' ', {', '.join(f'r.{column}' for column in columns)}))"
    splits = (
        f"SELECT btrim(token, '{APOSTROPHES}-') AS word "
        f"FROM regexp_split_to_table({text}, '[^[:alpha:]{APOSTROPHES}{separator}]+') AS token"
        for separator in ("-", "")
    )  # hyphenated words whole, then their parts
    return (
        f"SELECT DISTINCT r.org_id, w.word FROM {rows} CROSS JOIN LATERAL ({' UNION '.join(splits)}) w "
        f"WHERE length(w.word) BETWEEN 3 AND 50"
    )


def _add(rows: str, columns: tuple[str, ...]) -> str:
    """INSERT the words of `rows` the organisation does not have yet."""
    return (
        f"INSERT INTO search_words (org_id, word) SELECT org_id, word FROM ({_words_of(rows, columns)}) n "
        f"WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word)"
    )


def _still_used(org_id: str, word: str) -> str:
    """Whether a row of any searched table contains `word` (a trigram index lookup per search key).
    ILIKE: texticlike is LEAKPROOF in production (docs/security.md), so the policy lets it use them."""

    def contains(key: str) -> str:
        return f"{key} ILIKE '%' || {word} || '%'"

    return " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} x WHERE x.org_id = {org_id} AND ({' OR '.join(map(contains, keys))}))"
        for table, (_, keys) in SEARCHED.items()
    )


def _row(version: str, columns: tuple[str, ...]) -> str:
    """A row trigger's NEW or OLD as a one-row table r."""
    return "(SELECT " + ", ".join(f"{version}.{column} AS {column}" for column in ("org_id", *columns)) + ") r"


def _drop_unused(rows: str, columns: tuple[str, ...]) -> str:
    """PL/pgSQL: DELETE each word of `rows` that no row of any searched table still contains."""
    return (
        f"FOR gone IN {_words_of(rows, columns)} LOOP "
        f"IF NOT ({_still_used('gone.org_id', 'gone.word')}) THEN "
        f"DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word; END IF; END LOOP;"
    )


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
    condition = f"({SYSTEM_CONTEXT} OR org_id = {CURRENT_ORG})"
    op.execute("ALTER TABLE search_words ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE search_words FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON search_words USING {condition} WITH CHECK {condition}")
    for table, (columns, _) in SEARCHED.items():
        op.execute(f"""
            CREATE FUNCTION {table}_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {_add("new_rows r", columns)};
                RETURN NULL;
            END $$""")
        # Each probe of _still_used must use the trigram indexes: a word being dropped is usually in
        # no other row, and a scan for it reads every row of the organisation (120 ms a word for 100k
        # contacts at L). Expecting a few matches, the planner takes an EXISTS that scans (all rows,
        # or an org_id index) for one that stops early, the more so when a GIN index has many pending
        # entries (400 ms to purge one contact after a bulk rename, 20 with these settings): so only
        # bitmap scans, planned with the word.
        op.execute(f"""
            CREATE FUNCTION {table}_search_words_change() RETURNS trigger LANGUAGE plpgsql
            SET enable_seqscan = off SET enable_indexscan = off SET enable_indexonlyscan = off
            SET plan_cache_mode = force_custom_plan AS $$
            DECLARE gone record;
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    {_add(_row("NEW", columns), columns)};
                    {_drop_unused(_row("OLD", columns), columns)}
                ELSE
                    {_drop_unused("old_rows r", columns)}
                END IF;
                RETURN NULL;
            END $$""")
        changed = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in columns)
        for event, level, function in (
            ("INSERT", "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT", "add"),
            # A row trigger: an update that changes no searched column (a board move, a bulk status
            # change, a soft delete) costs nothing; a rename adds the new words, drops the old.
            (f"UPDATE OF {', '.join(columns)}", f"FOR EACH ROW WHEN ({changed})", "change"),
            ("DELETE", "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT", "change"),
        ):
            name = f"{table}_search_words_{event.split()[0].lower()}"
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} {level} "
                f"EXECUTE FUNCTION {table}_search_words_{function}()"
            )
    # Today's words, in one INSERT (the UNION keeps one of each).
    everything = " UNION ".join(_words_of(f"{table} r", columns) for table, (columns, _) in SEARCHED.items())
    op.execute(f"INSERT INTO search_words (org_id, word) {everything}")
    op.execute("ANALYZE search_words")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in SEARCHED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_search_words_{event} ON {table}")
            for function in ("add", "change"):
                op.execute(f"DROP FUNCTION {table}_search_words_{function}()")
    op.drop_index("search_word_trgm_idx", table_name="search_words")
    op.drop_index("ix_search_words_org_word", table_name="search_words")
    op.drop_table("search_words")

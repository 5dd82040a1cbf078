"""Tell PostgreSQL's planner that pg_trgm's matching functions are expensive.

pg_trgm declares similarity(), word_similarity() and the functions behind the `%` and `%>`
operators with COST 1, as cheap as an integer comparison. On a mid-size table (2,000 leads) the
planner therefore chose to scan every row and evaluate six trigram conditions on each (50 ms for
the global search's lead query) instead of the trigram indexes (under 7 ms). COST 100 (about what
a trigram extraction of two short strings costs next to an operator) lets it weigh them honestly.
PostgreSQL only; a role that does not own the extension's functions is told so and keeps the
defaults (docs/benchmarks.md).

Revision ID: 0007_trigram_function_costs
Revises: 0006_live_count_indexes
"""

from alembic import op

revision = "0007_trigram_function_costs"
down_revision = "0006_live_count_indexes"
branch_labels = None
depends_on = None

FUNCTIONS = (
    "similarity(text, text)",
    "word_similarity(text, text)",
    "similarity_op(text, text)",
    "word_similarity_commutator_op(text, text)",
)


def _set_cost(cost: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    statements = " ".join(f"ALTER FUNCTION {function} COST {cost};" for function in FUNCTIONS)
    op.execute(
        "DO $$ BEGIN " + statements + " EXCEPTION WHEN insufficient_privilege THEN "
        "RAISE NOTICE 'pg_trgm function costs unchanged: this role does not own them'; END $$"
    )


def upgrade():
    _set_cost(100)


def downgrade():
    _set_cost(1)

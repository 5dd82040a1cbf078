"""Text search shared by the list pages and the global search, in two tiers.

Exact: every word of the query is in one of the expressions (case-insensitive); a word of one or
two letters must start a word ("jo" finds "John" and "Mary Jones", not "Major"), a longer one may
sit anywhere. Ranked cheaply, by how the first expression (the record's name) begins, with no
per-row scoring, so a common name costs what fetching its matches costs.

Fuzzy (PostgreSQL, needles of MIN_FUZZY_LENGTH letters or more): pg_trgm similarity, so a name
with typos ("jonh smiht") still finds "John Smith"; ranked by score. It is the fallback for when
the exact words find too few rows: scoring every candidate of a common name was what made its
search slow (docs/benchmarks.md). Both tiers are bound-parameter SQL, never string-built SQL, and
every condition is on search_key(expression), which the trigram GIN indexes serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlalchemy.sql.elements import ColumnElement

from crm_web.models.mixins import full_name, search_key

__all__ = ["TextMatch", "full_name", "like_escape", "search_key", "text_match"]

# Below this pg_trgm similarity a row is not a match (0.3, pg_trgm's default, misses
# two-typo names such as "jonh smiht" / "John Smith", which score about 0.29).
SIMILARITY_THRESHOLD = 0.25
# Word similarity finds a typo in one word of a longer name ("silav" in "Adrian Silva" scores 0.5).
# At 0.25 a short needle matched any name with a word starting with its first letter ("lee": 8,806
# of 100k contacts, 1.4 s for the global search); pg_trgm's default 0.6 loses "silav" -> Silva.
WORD_SIMILARITY_THRESHOLD = 0.5
# Shorter needles get exact matching only: a trigram match of 1-3 letters is noise, not a typo.
MIN_FUZZY_LENGTH = 4
# Shorter words match at the start of a word: they hold no trigram, so "contains" could only be
# answered by reading every row (60 ms for "jo" in 100k contacts), and users typing two letters
# mean the start of a name anyway.
MIN_CONTAINS_LENGTH = 3
LIKE_ESCAPE = "\\"
MAX_WORDS = 6


def like_escape(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


@dataclass(frozen=True)
class TextMatch:
    """A WHERE clause and a rank to order by (lower is better); `fallback` is the fuzzy tier to use
    when this one matches too few rows (None: there is none)."""

    clause: ColumnElement[bool]
    rank: ColumnElement[Any]
    fallback: TextMatch | None = None


def _has_word(key: ColumnElement[str], word: str) -> ColumnElement[bool]:
    escaped = like_escape(word)
    if len(word) < MIN_CONTAINS_LENGTH:
        return or_(key.ilike(f"{escaped}%", escape=LIKE_ESCAPE), key.ilike(f"% {escaped}%", escape=LIKE_ESCAPE))
    return key.ilike(f"%{escaped}%", escape=LIKE_ESCAPE)


def _name_rank(name: ColumnElement[str], q: str) -> ColumnElement[int]:
    """0 the name is the query, 1 starts with it, 2 a word of it starts with it, 3 anything else."""
    escaped = like_escape(q)
    name = func.rtrim(name)  # a contact with no last name is "john " in full_name
    return case(
        (name.ilike(escaped, escape=LIKE_ESCAPE), 0),
        (name.ilike(f"{escaped}%", escape=LIKE_ESCAPE), 1),
        (name.ilike(f"% {escaped}%", escape=LIKE_ESCAPE), 2),
        else_=3,
    )


def text_match(dialect: str, q: str, expressions: Sequence[Any]) -> TextMatch | None:
    """Match `q` against `expressions` (the first is the record's name); None when q is blank."""
    q = " ".join(q.split())
    if not q:
        return None
    # The exact tier compares with ILIKE and the query as typed: SQLite folds only A-Z, on both sides
    # alike, so "Émile" still finds "Émile" there (a Python-lowered "émile" would not). The typo tier
    # is PostgreSQL's, whose lower() folds like Python's.
    words = q.split(" ")[:MAX_WORDS]
    needle = q.lower()
    keys = [search_key(e) for e in expressions]
    exact = and_(*(or_(*(_has_word(key, word) for key in keys)) for word in words))
    fallback = None
    if dialect == "postgresql" and len(needle) >= MIN_FUZZY_LENGTH:
        # `%` and `%>` mean similarity >= SIMILARITY_THRESHOLD and word_similarity >=
        # WORD_SIMILARITY_THRESHOLD: crm_web.database sets both pg_trgm thresholds on every connection.
        # A one-word needle is a typo in one word, which `%>` finds; the whole-string `%` only adds
        # two-word typos ("jonh smiht", word similarity 0.45) and, for one word, thousands of weak
        # candidates to recheck ("henyr": 17 ms instead of 7 for 100k contacts, the same top rows).
        operators = ("%", "%>") if len(words) > 1 else ("%>",)
        fuzzy = or_(*(key.op(operator)(needle) for key in keys for operator in operators))
        score = func.greatest(*(s for key in keys
                                for s in (func.similarity(key, needle), func.word_similarity(needle, key))))
        fallback = TextMatch(fuzzy, -score)
    return TextMatch(exact, _name_rank(keys[0], q), fallback)

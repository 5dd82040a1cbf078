"""Typo-tolerant text search shared by list pages and the global search.

PostgreSQL: pg_trgm similarity over the given expressions (a name with a typo such as
"jonh smiht" still finds "John Smith"), plus a plain contains so short prefixes match; the
score orders results. SQLite: every word must be contained (case-insensitive) in one of the
expressions; the score is a constant. Both return bound-parameter SQL, never string-built SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, literal, or_
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
# Shorter needles get contains-matching only: a trigram match of 1-3 letters is noise, not a typo.
MIN_FUZZY_LENGTH = 4
LIKE_ESCAPE = "\\"
MAX_WORDS = 6


def like_escape(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


@dataclass(frozen=True)
class TextMatch:
    """A WHERE clause for the search and a score expression to order by (higher is better)."""

    clause: ColumnElement[bool]
    score: ColumnElement[Any]


def text_match(dialect: str, q: str, expressions: Sequence[Any]) -> TextMatch | None:
    """Match `q` against `expressions` (e.g. full name, email); None when q is blank."""
    q = " ".join(q.split())
    if not q:
        return None
    words = q.split(" ")[:MAX_WORDS]
    if dialect != "postgresql":
        contains = and_(*(
            or_(*(func.coalesce(e, "").ilike(f"%{like_escape(w)}%", escape=LIKE_ESCAPE) for e in expressions))
            for w in words
        ))
        return TextMatch(contains, literal(1.0))
    # Every condition is on search_key(expression) with an operator gin_trgm_ops serves (ILIKE, %, %>),
    # so PostgreSQL answers from the trigram indexes instead of scoring every row. `%` and `%>` mean
    # similarity >= SIMILARITY_THRESHOLD and word_similarity >= WORD_SIMILARITY_THRESHOLD:
    # crm_web.database sets both pg_trgm thresholds on every connection.
    needle = q.lower()
    keys = [search_key(e) for e in expressions]
    contains = and_(*(
        or_(*(key.ilike(f"%{like_escape(w.lower())}%", escape=LIKE_ESCAPE) for key in keys)) for w in words
    ))
    scores = [score for key in keys for score in (func.similarity(key, needle), func.word_similarity(needle, key))]
    if len(needle) < MIN_FUZZY_LENGTH:
        return TextMatch(contains, func.greatest(*scores))
    fuzzy = [condition for key in keys for condition in (key.op("%")(needle), key.op("%>")(needle))]
    return TextMatch(or_(contains, *fuzzy), func.greatest(*scores))

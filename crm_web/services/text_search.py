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
    # similarity / word_similarity >= SIMILARITY_THRESHOLD: crm_web.database sets both pg_trgm
    # thresholds to it on every connection.
    needle = q.lower()
    keys = [search_key(e) for e in expressions]
    contains = and_(*(
        or_(*(key.ilike(f"%{like_escape(w.lower())}%", escape=LIKE_ESCAPE) for key in keys)) for w in words
    ))
    fuzzy = [condition for key in keys for condition in (key.op("%")(needle), key.op("%>")(needle))]
    scores = [score for key in keys for score in (func.similarity(key, needle), func.word_similarity(needle, key))]
    return TextMatch(or_(contains, *fuzzy), func.greatest(*scores))

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
    contains = and_(*(
        or_(*(func.coalesce(e, "").ilike(f"%{like_escape(w)}%", escape=LIKE_ESCAPE) for e in expressions))
        for w in words
    ))
    if dialect != "postgresql":
        return TextMatch(contains, literal(1.0))
    needle = q.lower()
    scores = []
    for expression in expressions:
        value = func.lower(func.coalesce(expression, ""))
        scores.extend((func.similarity(value, needle), func.word_similarity(needle, value)))
    score = func.greatest(*scores)
    return TextMatch(or_(contains, score >= SIMILARITY_THRESHOLD), score)

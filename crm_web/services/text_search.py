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
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, case, func, or_
from sqlalchemy.sql.elements import ColumnElement

from crm_web.models.mixins import full_name, name_order_key, search_key

__all__ = ["SearchShape", "SearchTerms", "TextMatch", "full_name", "like_escape", "match_terms", "search_key",
           "search_terms", "text_match"]

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
LAST_CODE_POINT = "\U0010ffff"


def like_escape(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


class SearchShape(NamedTuple):
    """What decides a search statement's SQL (the words themselves are bound parameters)."""

    dialect: str
    short_words: tuple[bool, ...]  # per word: fewer than MIN_CONTAINS_LENGTH letters
    fuzzy_operators: tuple[str, ...]  # the typo tier's pg_trgm operators; none: no typo tier


@dataclass(frozen=True)
class SearchTerms:
    """What a query asks, without any SQL: `shape` decides the statement, `params` its values
    (bound by name). The global search builds each statement once per shape and reuses it with
    new params: building the SQL expressions cost more than running them."""

    shape: SearchShape
    params: dict[str, str]


def search_terms(dialect: str, q: str) -> SearchTerms | None:
    """The terms of `q` (None when blank). The exact tier compares with ILIKE and the query as typed:
    SQLite folds only A-Z, on both sides alike, so "Émile" still finds "Émile" there (a
    Python-lowered "émile" would not). The typo tier is PostgreSQL's, whose lower() folds like Python's."""
    q = " ".join(q.split())
    if not q:
        return None
    words = q.split(" ")[:MAX_WORDS]
    escaped = like_escape(q)
    params = {"name_is": escaped, "name_starts": f"{escaped}%", "name_word_starts": f"% {escaped}%", "prefix": q}
    short = tuple(len(word) < MIN_CONTAINS_LENGTH for word in words)  # as typed, before escaping
    for index, (word, is_short) in enumerate(zip(words, short)):
        word = like_escape(word)
        if is_short:
            params |= {f"word{index}_start": f"{word}%", f"word{index}_inner": f"% {word}%"}
        else:
            params[f"word{index}"] = f"%{word}%"
    needle = q.lower()
    operators: tuple[str, ...] = ()
    if dialect == "postgresql" and len(needle) >= MIN_FUZZY_LENGTH:
        # `%` and `%>` mean similarity >= SIMILARITY_THRESHOLD and word_similarity >=
        # WORD_SIMILARITY_THRESHOLD: crm_web.database sets both pg_trgm thresholds on every connection.
        # A one-word needle is a typo in one word, which `%>` finds; the whole-string `%` only adds
        # two-word typos ("jonh smiht", word similarity 0.45) and, for one word, thousands of weak
        # candidates to recheck ("henyr": 17 ms instead of 7 for 100k contacts, the same top rows).
        operators = ("%", "%>") if len(words) > 1 else ("%>",)
        params["needle"] = needle
    return SearchTerms(SearchShape(dialect, short, operators), params)


@dataclass(frozen=True)
class TextMatch:
    """A WHERE clause and a rank to order by (lower is better); `fallback` is the fuzzy tier to use
    when this one matches too few rows (None: there is none). `starts_with` holds the rows whose
    name starts with the query (the best ranks) as a range of `name_order`, which
    models/mixins.name_order_index serves in that order."""

    clause: ColumnElement[bool]
    rank: ColumnElement[Any]
    fallback: TextMatch | None = None
    starts_with: ColumnElement[bool] | None = None
    name_order: ColumnElement[str] | None = None


def text_match(dialect: str, q: str, expressions: Sequence[Any]) -> TextMatch | None:
    """Match `q` against `expressions` (the first is the record's name), its words in the SQL as
    values (unique bound parameters, so it can sit in any statement); None when q is blank."""
    terms = search_terms(dialect, q)
    return None if terms is None else match_terms(terms, expressions, reusable=False)


def match_terms(terms: SearchTerms, expressions: Sequence[Any], *, reusable: bool = True) -> TextMatch:
    """The SQL for `terms` against `expressions`. Reusable: the words are bound parameters named as
    in terms.params and carry no value, so a statement built from it runs again with any params of
    the same shape and refuses to run without them (never with another query's words)."""
    dialect, short_words, operators = terms.shape

    def value(name: str) -> Any:
        if reusable:
            return bindparam(name, type_=String)
        return bindparam(name, terms.params[name], type_=String, unique=True)

    def ilike(key: ColumnElement[str], name: str) -> ColumnElement[bool]:
        return key.ilike(value(name), escape=LIKE_ESCAPE)

    keys = [search_key(e) for e in expressions]
    exact = and_(*(
        or_(*(or_(ilike(key, f"word{index}_start"), ilike(key, f"word{index}_inner")) if short else
              ilike(key, f"word{index}") for key in keys))
        for index, short in enumerate(short_words)))
    name = func.rtrim(keys[0])  # a contact with no last name is "john " in full_name
    # 0 the name is the query, 1 starts with it, 2 a word of it starts with it, 3 anything else.
    rank = case((ilike(name, "name_is"), 0), (ilike(name, "name_starts"), 1), (ilike(name, "name_word_starts"), 2),
                else_=3)
    fallback = None
    if operators:
        needle = value("needle")
        fuzzy = or_(*(key.op(operator)(needle) for key in keys for operator in operators))
        score = func.greatest(*(s for key in keys
                                for s in (func.similarity(key, needle), func.word_similarity(needle, key))))
        fallback = TextMatch(fuzzy, -score)
    name_order = name_order_key(expressions[0], dialect)
    prefix = func.lower(value("prefix"))
    # Every name that starts with the prefix sorts between it and the prefix followed by the last
    # code point (byte order, so UTF-8 keeps code point order).
    starts_with = and_(name_order >= prefix, name_order < prefix.op("||")(LAST_CODE_POINT))
    return TextMatch(exact, rank, fallback, starts_with, name_order)

"""Text search shared by the list pages and the global search, in two tiers.

Exact: every word of the query is in one of the expressions (case-insensitive); a word of one or two
letters must start a word ("jo" finds "John" and "Mary Jones", not "Major"), a longer one may sit
anywhere. Ranked cheaply, by how the first expression (the record's name) begins, with no per-row
scoring, so a common name costs what fetching its matches costs.

Typo (PostgreSQL): each word of the query of MIN_CORRECTED_LENGTH letters or more is looked up in
the organisation's vocabulary (models/search_word.py) for the closest words one edit away (two from
LONG_WORD letters): a letter added, dropped or changed, or two neighbours swapped. The exact tier
then runs again with each word or its corrections ("jonh smiht" finds John Smith through john and
smith), ranked by how the name begins with the corrected query. Shorter words stay as typed ("bob
smiht" needs a Bob). A swap or a changed letter is likelier than a missing one, so the closest
corrections are those of the typed length; only when they find nothing does a wider tier try every
word within reach ("davd smith": "dave" is closer, but only "david" sits beside "smith"). It is
the fallback for when no row has the exact words. Scoring every row that
shares trigrams with a typo would read a common surname's every row ("smiht": every Smith); the
vocabulary is far shorter than the rows it names. Both tiers are bound-parameter SQL, never
string-built SQL; the word conditions are ILIKE on search_key(expression), which the trigram GIN indexes
serve (on SQLite, which has none, LIKE on the expression itself), and the name and surname steps are
ranges and equalities the btree indexes serve.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, case, func, literal, or_, select, type_coerce, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from crm_web.models import SearchWord
from crm_web.models.mixins import full_name, name_order_key, search_key

__all__ = [
    "SearchShape",
    "SearchTerms",
    "TextMatch",
    "correct_spelling",
    "edit_distance",
    "full_name",
    "like_escape",
    "match_terms",
    "search_key",
    "search_terms",
    "text_match",
]

# The vocabulary lookup's candidates: words of about the typed length with at least this pg_trgm
# similarity to it (`%`, served by the trigram index; search_settings() sets it for the transaction);
# the edit distance then decides. Low, because a swap inside a short word leaves few trigrams in
# common: "jhon" / "john" share one of nine (0.11), "smtih" / "smith" two of ten.
SIMILARITY_THRESHOLD = 0.1
# Shorter words are not corrected: one edit away from a 3-letter word is half the vocabulary.
MIN_CORRECTED_LENGTH = 4
# From this length a word may be two edits away from what was meant ("mcdonlad" -> "mcdonald" is one).
LONG_WORD = 7
# At most this many corrections per word, the closest first.
MAX_CORRECTIONS = 3
# The wider tier's corrections per word: every word within the allowed edits, the closest first.
MAX_WIDENED = 6
# Shorter words match at the start of a word: they hold no trigram, so "contains" could only be
# answered by reading every row, and users typing two letters
# mean the start of a name anyway.
MIN_CONTAINS_LENGTH = 3
LIKE_ESCAPE = "\\"
MAX_WORDS = 6
LAST_CODE_POINT = "\U0010ffff"
# The characters that JSON text holds as they are, whoever wrote it (Python's json.dumps escapes the
# rest of ASCII and, by default, everything past it; SQLite's JSON functions a quote, a backslash and
# the control characters): a word made of them is in a JSON document's text wherever one of its
# string values holds it.
JSON_VERBATIM = frozenset(chr(code) for code in range(0x20, 0x7F)) - {'"', "\\"}


def like_escape(text: str) -> str:
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


class SearchShape(NamedTuple):
    """What decides a search statement's SQL (the words themselves are bound parameters)."""

    dialect: str
    short_words: tuple[bool, ...]  # per word: fewer than MIN_CONTAINS_LENGTH letters
    corrections: tuple[int, ...] = ()  # per word: how many corrections; empty: no typo tier
    widened: tuple[int, ...] = ()  # per word: how many corrections in the wider tier; empty: none
    # per word (SQLite): whether JSON text holds it as typed (JSON_VERBATIM); empty: not looked at
    verbatim: tuple[bool, ...] = ()


@dataclass(frozen=True)
class SearchTerms:
    """What a query asks, without any SQL: `shape` decides the statement, `params` its values
    (bound by name). The global search builds each statement once per shape and reuses it with
    new params: building the SQL expressions cost more than running them."""

    shape: SearchShape
    params: dict[str, str]
    words: tuple[str, ...] = ()  # lower case

    @property
    def correctable(self) -> bool:
        """Whether a word could have a typo tier (correct_spelling looks it up)."""
        return self.shape.dialect == "postgresql" and any(len(word) >= MIN_CORRECTED_LENGTH for word in self.words)


def search_terms(dialect: str, q: str) -> SearchTerms | None:
    """The exact terms of `q` (None when blank). The exact tier compares with ILIKE and the query as
    typed: SQLite folds only A-Z, on both sides alike, so "Émile" still finds "Émile" there (a
    Python-lowered "émile" would not). The typo tier is PostgreSQL's, whose lower() folds like Python's."""
    q = " ".join(q.split())
    if not q:
        return None
    words = q.split(" ")[:MAX_WORDS]
    escaped = like_escape(q)
    params = {"name_is": escaped, "name_starts": f"{escaped}%", "name_word_starts": f"% {escaped}%", "prefix": q}
    short = tuple(len(word) < MIN_CONTAINS_LENGTH for word in words)  # as typed, before escaping
    for index, (word, is_short) in enumerate(zip(words, short, strict=False)):
        word = like_escape(word)
        if is_short:
            params |= {f"word{index}_start": f"{word}%", f"word{index}_inner": f"% {word}%"}
        else:
            params[f"word{index}"] = f"%{word}%"
    verbatim: tuple[bool, ...] = ()
    if dialect == "sqlite":
        verbatim = tuple(set(word) <= JSON_VERBATIM for word in words)
        for index, (word, is_short) in enumerate(zip(words, short, strict=False)):
            if is_short:
                params[f"word{index}_any"] = f"%{like_escape(word)}%"
    shape = SearchShape(dialect, short, verbatim=verbatim)
    return SearchTerms(shape, params, tuple(word.lower() for word in words))


def search_settings() -> list[ColumnElement[Any]]:
    """Columns that set the vocabulary lookup's trigram threshold for the rest of the transaction
    (PostgreSQL; transaction-local, so it holds behind a transaction pooler too): a caller of
    correct_spelling selects them along with a statement it runs before, so they cost none of their own."""
    return [func.set_config(literal("pg_trgm.similarity_threshold"), literal(str(SIMILARITY_THRESHOLD)), True)]


def correct_spelling(session: Session, org_id: uuid.UUID, terms: SearchTerms) -> SearchTerms:
    """`terms` with a typo tier: each word of MIN_CORRECTED_LENGTH letters or more may also be one of
    its closest vocabulary words (one statement, in a transaction that has search_settings(); this
    organisation's vocabulary only, like every query of a service). The same terms when no word has
    any, or none could (SearchTerms.correctable). A word the vocabulary has is corrected too: the
    typo tier only runs when the exact words found nothing, and the vocabulary may hold a typo that
    was later fixed in the record."""
    if not terms.correctable:
        return terms
    looked_up = [(index, word) for index, word in enumerate(terms.words) if len(word) >= MIN_CORRECTED_LENGTH]
    found: dict[int, dict[str, float]] = {index: {} for index, _ in looked_up}
    for index, word, similarity in session.execute(
        union_all(
            *(
                select(literal(index), SearchWord.word, func.similarity(SearchWord.word, typed)).where(
                    SearchWord.org_id == org_id,
                    SearchWord.word.op("%")(typed),
                    SearchWord.word != typed,
                    func.length(SearchWord.word).between(
                        len(typed) - _allowed_edits(typed), len(typed) + _allowed_edits(typed)
                    ),
                )
                for index, typed in looked_up
            )
        )
    ):
        found[index][word] = similarity  # a word added twice at once is stored twice (search_word.py)
    corrections = [_closest(word, found.get(index, {})) for index, word in enumerate(terms.words)]
    if not any(corrections):
        return terms
    widened = [_within_reach(word, found.get(index, {})) for index, word in enumerate(terms.words)]
    if widened == corrections:
        widened = []
    params = dict(terms.params)
    meant = []  # the query as meant: each word as its closest correction, or as typed
    for index, (word, fixes) in enumerate(zip(terms.words, corrections, strict=False)):
        params |= {f"fix{index}_{number}": f"%{like_escape(fix)}%" for number, fix in enumerate(fixes)}
        meant.append(fixes[0] if fixes else word)
    for index, fixes in enumerate(widened):
        params |= {f"wide{index}_{number}": f"%{like_escape(fix)}%" for number, fix in enumerate(fixes)}
    # The words of the query past MAX_WORDS are not in it: they match nothing either.
    phrase = like_escape(" ".join(meant))
    params |= {
        "fixed_is": phrase,
        "fixed_starts": f"{phrase}%",
        "fixed_word_starts": f"% {phrase}%",
        "fixed_prefix": " ".join(meant),
    }
    shape = terms.shape._replace(corrections=tuple(map(len, corrections)), widened=tuple(map(len, widened)))
    return replace(terms, shape=shape, params=params)


def _allowed_edits(word: str) -> int:
    return 2 if len(word) >= LONG_WORD else 1


def _closest(word: str, candidates: dict[str, float]) -> tuple[str, ...]:
    """The closest candidates within the word's edit distance: the fewest edits, and of those the
    same length if any (a swapped or mistyped letter is likelier than a missing one: "jonh" meant
    "john", not "jon"; "williasm" meant "williams", not "william", which would also bring every
    William). Ties ordered by trigram similarity, then alphabetically."""
    ranked = sorted(
        (distance, len(candidate) != len(word), -similarity, candidate)
        for candidate, similarity in candidates.items()
        if (distance := edit_distance(word, candidate)) <= _allowed_edits(word)
    )
    if not ranked:
        return ()
    closest = ranked[0][:2]
    return tuple(candidate for distance, other_length, _, candidate in ranked if (distance, other_length) == closest)[
        :MAX_CORRECTIONS
    ]


def _within_reach(word: str, candidates: dict[str, float]) -> tuple[str, ...]:
    """Every candidate within the word's edit distance, the closest first (the wider tier: "davd smith"
    finds David Smith when no Dave Smith exists, though "dave" is the likelier correction of "davd")."""
    ranked = sorted(
        (distance, len(candidate) != len(word), -similarity, candidate)
        for candidate, similarity in candidates.items()
        if (distance := edit_distance(word, candidate)) <= _allowed_edits(word)
    )
    return tuple(candidate for *_, candidate in ranked[:MAX_WIDENED])


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: adding, dropping or changing a letter, or swapping two
    neighbouring letters, is one edit each."""
    before_previous: list[int] = []
    previous = list(range(len(b) + 1))
    for i, letter in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (letter != other))
            if i > 1 and j > 1 and letter == b[j - 2] and a[i - 2] == other:
                cost = min(cost, before_previous[j - 2] + 1)
            current.append(cost)
        before_previous, previous = previous, current
    return previous[-1]


@dataclass(frozen=True)
class TextMatch:
    """A WHERE clause and a rank to order by (lower is better); `corrected` is the typo tier to use
    when this one matches nothing (None: there is none); a typo tier's own `corrected` is the wider
    tier (every correction within reach) for when the closest corrections match nothing.
    `starts_with` holds the rows whose name starts with the query (ranks 0 and 1) as a range of `name_order`, which
    models/mixins.name_order_index serves in that order; `surnamed` the people whose last name is
    the query (rank 2), which models/mixins.surname_index serves in name order."""

    clause: ColumnElement[bool]
    rank: ColumnElement[Any]
    corrected: TextMatch | None = None
    starts_with: ColumnElement[bool] | None = None
    name_order: ColumnElement[str] | None = None
    surnamed: ColumnElement[bool] | None = None
    # A typo tier with its wider tier folded into `clause` (BaseService.search_criteria): (whether
    # the closest corrections match, their clause, the wider clause). `clause` is the closest one's
    # when they match, else the wider one's; a count picks one of the two instead of their OR, which
    # no index plan serves as well.
    tiers: tuple[ColumnElement[bool], ColumnElement[bool], ColumnElement[bool]] | None = None


def text_match(dialect: str, q: str, expressions: Sequence[Any]) -> TextMatch | None:
    """Match the exact words of `q` against `expressions` (the first is the record's name), as values
    (unique bound parameters, so it can sit in any statement); None when q is blank."""
    terms = search_terms(dialect, q)
    return None if terms is None else match_terms(terms, expressions, reusable=False)


def match_terms(
    terms: SearchTerms,
    expressions: Sequence[Any],
    *,
    surname: Any = None,
    reusable: bool = True,
    document: Any = None,
    in_document: Sequence[Any] = (),
) -> TextMatch:
    """The SQL for `terms` against `expressions`; `surname`: a person's last name, which ranks a person
    whose last name is the query right after the names that start with it. Reusable: the words are
    bound parameters named as in terms.params and carry no value, so a statement built from it runs
    again with any params of the same shape and refuses to run without them (never with another
    query's words).

    `in_document`: more expressions to match, string values inside the JSON column `document` (the
    custom text fields). On SQLite, which parses the JSON for each of them on every row it reads, a
    word the JSON holds as typed (SearchShape.verbatim) is first looked for in the document's text:
    a row whose document lacks it has it in none of those values, and its JSON is never parsed."""
    dialect, short_words, corrections, widened = terms.shape[:4]

    def value(name: str) -> Any:
        if reusable:
            return bindparam(name, type_=String)
        return bindparam(name, terms.params[name], type_=String, unique=True)

    # SQLite's LIKE ignores the case of A-Z only, and its lower() folds A-Z only: there `expr LIKE p`
    # is what `lower(lower(expr)) LIKE lower(p)` is, without three calls per row of a scan (SQLite has
    # no trigram index for search_key to match).
    sqlite = dialect == "sqlite"

    def ilike(key: ColumnElement[str], name: str) -> ColumnElement[bool]:
        if sqlite:
            return key.like(value(name), escape=LIKE_ESCAPE)
        return key.ilike(value(name), escape=LIKE_ESCAPE)

    keys = [e if sqlite else search_key(e) for e in (*expressions, *in_document)]
    direct, inside = keys[: len(expressions)], keys[len(expressions) :]
    # The words looked for in the document's text before its values (SQLite), and how (one pattern).
    screened = {
        index: f"word{index}_any" if short else f"word{index}"
        for index, (short, verbatim) in enumerate(zip(short_words, terms.shape.verbatim, strict=False))
        if sqlite and verbatim and inside
    }

    def typed(index: int, short: bool) -> list[str]:  # the patterns of the word as typed
        return [f"word{index}_start", f"word{index}_inner"] if short else [f"word{index}"]

    def any_key(patterns: Sequence[str], keys: Sequence[Any]) -> ColumnElement[bool]:
        return or_(*(ilike(key, pattern) for key in keys for pattern in patterns))

    def every_word(patterns: Sequence[Sequence[str]], *, screen: bool = False) -> ColumnElement[bool]:
        """Each word's patterns (any of them) in one of the keys; with `screen`, the document's text
        first holds the words in `screened` (the query's words as typed only)."""
        return and_(
            *(
                or_(
                    any_key(word, direct),
                    and_(
                        type_coerce(document, String).like(value(screened[index]), escape=LIKE_ESCAPE),
                        any_key(word, inside),
                    ),
                )
                if screen and index in screened
                else any_key(word, keys)
                for index, word in enumerate(patterns)
            )
        )

    name = func.rtrim(keys[0])  # a contact with no last name is "john " in full_name
    name_order = name_order_key(expressions[0], dialect)

    def surnamed(prefix: str) -> ColumnElement[bool] | None:
        return None if surname is None else search_key(surname) == func.lower(value(prefix))

    def rank(phrase: str, prefix: str) -> ColumnElement[int]:
        # 0 the name is the phrase, 1 starts with it, 2 the last name is the phrase (people), 3 a word
        # of the name starts with it, 4 anything else.
        ranks = [
            (ilike(name, f"{phrase}_is"), 0),
            (ilike(name, f"{phrase}_starts"), 1),
            (ilike(name, f"{phrase}_word_starts"), 3),
        ]
        surname_clause = surnamed(prefix)
        if surname_clause is not None:
            ranks.insert(2, (surname_clause, 2))
        return case(*ranks, else_=4)

    def starting(prefix: str) -> ColumnElement[bool]:
        # Every name that starts with the prefix sorts between it and the prefix followed by the last
        # code point (byte order, so UTF-8 keeps code point order).
        low = func.lower(value(prefix))
        return and_(name_order >= low, name_order < low.op("||")(LAST_CODE_POINT))

    exact = [typed(index, short) for index, short in enumerate(short_words)]

    def tier(prefix: str, counts: Sequence[int], fallback: TextMatch | None) -> TextMatch:
        fixes = [
            [*word, *(f"{prefix}{index}_{number}" for number in range(count))]
            for index, (word, count) in enumerate(zip(exact, counts, strict=False))
        ]
        return TextMatch(
            every_word(fixes),
            rank("fixed", "fixed_prefix"),
            fallback,
            starting("fixed_prefix"),
            name_order,
            surnamed("fixed_prefix"),
        )

    corrected = None
    if corrections:
        # The closest corrections first; when they find nothing, every word within reach (widened).
        corrected = tier("fix", corrections, tier("wide", widened, None) if widened else None)
    return TextMatch(
        every_word(exact, screen=True),
        rank("name", "prefix"),
        corrected,
        starting("prefix"),
        name_order,
        surnamed("prefix"),
    )

"""Global search: contacts, companies, leads and deals at once, at most one query per type.

Each type is one SELECT of at most LIMIT rows: the exact matches or, on PostgreSQL when there are
none, the matches of the query's words corrected against the organisation's vocabulary (see
text_search). A word may also be in one of the organisation's custom text fields (text, long text,
URL, email) of that type: their values join the searched expressions of the same statement, so the
statement count does not depend on the fields. On PostgreSQL each such field has a trigram index
on exactly the expression searched, partial to its organisation's live rows (services/custom_fields);
so that a plan made without the parameters' values can prove that predicate, such a statement
renders the organisation's id into its SQL (a UUID, never user text). The vocabulary of the typo
tier holds the built-in searched columns' words only (migration 0012): a misspelt word found only
in a custom field is not corrected, though a correction is looked for in the fields too.
Results carry the text to highlight; highlighting itself (escape first, then <mark>) happens in
`highlight`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import CTE, ColumnElement, Uuid, bindparam, func, literal, select, union_all
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from crm_web.custom_fields import TEXT_TYPES, CustomField, value_expression
from crm_web.entities import Entity, GlobalSearch, searched_globally
from crm_web.formatting import choice_label
from crm_web.services.base import ActorService
from crm_web.services.custom_fields import entity_fields
from crm_web.services.sql import AnySelect
from crm_web.services.text_search import (
    SearchShape,
    SearchTerms,
    TextMatch,
    correct_spelling,
    match_terms,
    search_settings,
    search_terms,
)

LIMIT = 5
MIN_LENGTH = 2


@dataclass
class SearchHit:
    kind: str  # "contact", "company", "lead", "deal"
    id: uuid.UUID
    label: str
    detail: str = ""


@dataclass
class SearchGroup:
    kind: str
    title: str
    hits: list[SearchHit]


def highlight(text: str, q: str) -> Markup:
    """`text` escaped, with each query word wrapped in <mark> (case-insensitive)."""
    words = sorted({w for w in q.split() if w}, key=len, reverse=True)
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out = []
    last = 0
    for found in pattern.finditer(text):
        out.append(escape(text[last : found.start()]))
        out.append(Markup("<mark>%s</mark>") % text[found.start() : found.end()])
        last = found.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


# What the global search looks through, in the order its groups are shown (the entity registry).
SEARCHED: tuple[Entity, ...] = tuple(searched_globally())


def _search_of(kind: Entity) -> GlobalSearch:
    assert kind.global_search is not None  # SEARCHED holds only entities that declare one
    return kind.global_search


class SearchService(ActorService):
    """Search everything the actor's organisation owns (soft-deleted rows are hidden globally)."""

    def search(self, q: str) -> list[SearchGroup]:
        q = " ".join(q.split())[:100]
        terms = search_terms(self.session.get_bind().dialect.name, q) if len(q) >= MIN_LENGTH else None
        if terms is None:
            return []
        if terms.shape.dialect == "postgresql":
            # Plan the statements without the words' values: their plans do not depend on the words,
            # and a custom plan estimates every pattern against the column statistics, which costs more
            # than running these CTEs. Transaction-local, so no
            # other page is affected. (Each request plans them again: psycopg deallocates its
            # prepared statements at every rollback, which is how a read-only request ends.) The same
            # statement sets the typo lookup's threshold.
            # A generic plan costs each step for any word, a common one's matches included: in a big
            # organisation that total passed the threshold of parallel workers, which then started
            # on every request for steps their one-time filters skip. The statements read a few index
            # ranges and return five rows: workers do not pay (nor JIT: off in every transaction,
            # crm_web/database.py tenant_settings).
            self.session.execute(
                select(
                    func.set_config("plan_cache_mode", "force_generic_plan", True),
                    func.set_config("max_parallel_workers_per_gather", "0", True),
                    *search_settings(),
                )
            )
        terms = correct_spelling(self.session, self.actor.org_id, terms)
        groups = []
        for index, kind in enumerate(SEARCHED):
            rows = self.session.execute(
                _statement(index, terms.shape, self._custom_keys(kind)), {**terms.params, "org_id": self.actor.org_id}
            ).all()
            if rows:
                choices = _search_of(kind).detail_choices
                hits = [
                    SearchHit(
                        kind.name,
                        row.id,
                        row.label.strip(),
                        choice_label(row.detail, choices) if choices else (row.detail or ""),
                    )
                    for row in rows
                ]
                groups.append(SearchGroup(kind.name, _search_of(kind).title, hits))
        return groups

    def _custom_keys(self, kind: Entity) -> tuple[str, ...]:
        """The keys of the organisation's live custom text fields of `kind` (from the organisation's
        row the request loaded with the user: no statement)."""
        fields = entity_fields(self.session, self.actor.org_id, kind.name)
        return tuple(cf.key for cf in fields if cf.type in TEXT_TYPES)


@lru_cache(maxsize=1024)
def _statement(index: int, shape: SearchShape, custom_keys: tuple[str, ...] = ()) -> AnySelect:
    """SEARCHED[index]'s statement for queries of this shape that also look in the custom text fields
    `custom_keys`, built once per process: building it cost more than running it. Bounded: an odd
    query's shape, or an organisation's old set of fields, does not stay forever. The keys are
    inlined in the SQL (checked names, custom_fields._args), the organisation and the words bound."""
    kind = SEARCHED[index]
    search = _search_of(kind)
    custom = tuple(
        value_expression(kind.model, CustomField(id="", key=key, label=key, type="text")) for key in custom_keys
    )
    match = match_terms(
        SearchTerms(shape, {}), search.searched, surname=kind.surname, document=kind.model.custom, in_document=custom
    )
    return _best(
        kind.model,
        search.label,
        search.detail,
        match,
        inline_org=bool(custom) and shape.dialect == "postgresql",
        sqlite=shape.dialect == "sqlite",
    )


def _best(
    model: Any, label: Any, detail: Any, match: TextMatch, *, inline_org: bool = False, sqlite: bool = False
) -> AnySelect:
    """The LIMIT best rows of one type in ONE statement, each step behind a one-time filter that
    skips it once the steps before found LIMIT rows:

    1. names that start with the query, read in name order from the name index, stopping at LIMIT
       rows (a common first name: five index entries instead of ranking its thousands of rows);
    2. with fewer, people whose last name is the query, read in name order from the surname index
       (a common last name: the same);
    3. with fewer still, every exact match, ranked;
    4. only when the exact words found nothing, the same three steps for the corrected words
       ("smiht" for contacts: "Smithers Ray" from the name index, then the Smiths from the surname
       index);
    5. only when those found nothing either, the same for the wider corrections ("davd smith").

    The organisation is the parameter `org_id`, so the statement serves every organisation; with
    `inline_org` its value is written into the SQL when the statement runs (the custom fields' partial
    indexes hold one organisation's rows: a generic plan uses them only for that literal).

    On `sqlite` step 1 tests the organisation as `+org_id`, which no index serves: SQLite, without
    statistics, prefers any index on org_id to a range of names, and would rank the organisation's
    every row; its name index leads with the name (models/mixins.sqlite_name_order_index).
    """
    org_id = bindparam("org_id", type_=Uuid, literal_execute=inline_org)
    name_order = match.name_order
    assert name_order is not None  # match_terms always orders by name

    def tier(number: int, clause: Any, rank: Any, *, org_column: Any = model.org_id) -> AnySelect:
        return (
            select(
                model.id.label("id"),
                label.label("label"),
                detail.label("detail"),
                literal(number).label("tier"),
                rank.label("rank"),
                name_order.label("name_order"),
            )
            .where(org_column == org_id, clause)
            .order_by(rank, name_order, model.id)
            .limit(LIMIT)
        )

    def count(rows: Any) -> ColumnElement[int]:
        return select(func.count()).select_from(rows).scalar_subquery()

    def steps(number: int, words: TextMatch, *, unless_found: Any = None) -> CTE:
        """Steps 1-3 for `words` (the query's or the corrected words); none if `unless_found` has rows."""

        def when_needed(rows: AnySelect) -> AnySelect:
            return rows if unless_found is None else rows.where(count(unless_found) == 0)

        read: list[CTE] = []  # steps 1 and 2, each skipped once the ones before hold LIMIT rows

        def read_in_name_order(name: str, clause: Any, org_column: Any = model.org_id) -> None:
            rows = tier(number, clause, words.rank, org_column=org_column)
            rows = when_needed(rows.order_by(None).order_by(name_order, model.id))
            for earlier in read:
                rows = rows.where(count(earlier) < LIMIT, model.id.not_in(select(earlier.c.id)))
            read.append(rows.cte(f"{name}{number}"))

        read_in_name_order("starting", words.starts_with, _unindexed(model.org_id) if sqlite else model.org_id)
        if words.surnamed is not None:
            read_in_name_order("surnamed", words.surnamed)
        enough = sum((count(rows) for rows in read[1:]), count(read[0])) >= LIMIT
        ranked = when_needed(tier(number, words.clause, words.rank).where(~enough)).subquery()
        # each branch wrapped: SQLite refuses LIMIT inside a UNION branch
        return union_all(*(select(rows).where(enough) for rows in read), select(ranked)).cte(f"steps{number}")

    found: Any = steps(0, match)
    fallback, number = match.corrected, 1  # the typo tier, then its wider tier
    while fallback is not None:
        found = union_all(select(found), select(steps(number, fallback, unless_found=found))).subquery()
        fallback, number = fallback.corrected, number + 1
    return select(found).order_by(found.c.tier, found.c.rank, found.c.name_order, found.c.id).limit(LIMIT)


def _unindexed(column: Any) -> ColumnElement[Any]:
    """`+column`: SQLite's way to keep a test of the column out of its choice of index (the value is
    the column's own)."""
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)

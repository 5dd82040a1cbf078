"""Global search: contacts, companies, leads and deals at once, at most one query per type.

Each type is one SELECT of at most LIMIT rows: the exact matches, topped up with typo-tolerant
ones on PostgreSQL (see text_search). Results carry the text to highlight; highlighting
itself (escape first, then <mark>) happens in `highlight`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import Select, func, literal, select, union_all

from crm_web.models import Company, Contact, Deal, Lead
from crm_web.services.base import Actor
from crm_web.extensions import db
from crm_web.services.text_search import TextMatch, full_name, text_match

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
        out.append(escape(text[last:found.start()]))
        out.append(Markup("<mark>%s</mark>") % text[found.start():found.end()])
        last = found.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


class SearchService:
    """Search everything the actor's organisation owns (soft-deleted rows are hidden globally)."""

    def __init__(self, actor: Actor, session=None):
        self.actor = actor
        self.session = session or db.session

    def search(self, q: str) -> list[SearchGroup]:
        q = " ".join(q.split())[:100]
        if len(q) < MIN_LENGTH:
            return []
        dialect = self.session.get_bind().dialect.name
        groups = []
        for kind, title, model, label, detail, expressions in (
            ("contact", "Contacts", Contact, full_name(Contact.first_name, Contact.last_name), Contact.email,
             [full_name(Contact.first_name, Contact.last_name), Contact.email]),
            ("company", "Companies", Company, Company.name, Company.city, [Company.name]),
            ("lead", "Leads", Lead, full_name(Lead.first_name, Lead.last_name), Lead.company_name,
             [full_name(Lead.first_name, Lead.last_name), Lead.email, Lead.company_name]),
            ("deal", "Deals", Deal, Deal.name, Deal.status, [Deal.name]),
        ):
            match = text_match(dialect, q, expressions)
            rows = self.session.execute(self._best(model, label, detail, match)).all()
            if rows:
                groups.append(SearchGroup(kind, title, [SearchHit(kind, row.id, row.label.strip(), row.detail or "")
                                                        for row in rows]))
        return groups

    def _best(self, model, label, detail, match: TextMatch) -> Select:
        """The LIMIT best rows of one type in ONE statement: the exact matches, topped up with typo-tolerant
        ones only when there are fewer than LIMIT of them (a one-time filter: otherwise that branch never
        runs, which keeps a common name's type-ahead from scoring its thousands of rows)."""

        def tier(number: int, clause, rank) -> Select:
            return (select(model.id.label("id"), label.label("label"), detail.label("detail"),
                           literal(number).label("tier"), rank.label("rank"))
                    .where(model.org_id == self.actor.org_id, clause)
                    .order_by(rank, label, model.id).limit(LIMIT))

        exact = tier(0, match.clause, match.rank)
        if match.fallback is None:
            return exact
        shown = exact.cte("exact")
        fuzzy = tier(1, match.fallback.clause, match.fallback.rank).where(
            select(func.count()).select_from(shown).scalar_subquery() < LIMIT,
            model.id.not_in(select(shown.c.id)))
        both = union_all(select(shown), fuzzy).subquery()
        return select(both).order_by(both.c.tier, both.c.rank, both.c.label, both.c.id).limit(LIMIT)

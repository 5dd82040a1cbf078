"""Global search: contacts, companies, leads and deals at once, at most one query per type.

Each type is one SELECT of at most LIMIT rows (typo-tolerant trigram ranking on PostgreSQL,
contains on SQLite, see text_search). Results carry the text to highlight; highlighting
itself (escape first, then <mark>) happens in `highlight`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import select

from crm_web.models import Company, Contact, Deal, Lead
from crm_web.services.base import Actor
from crm_web.extensions import db
from crm_web.services.text_search import full_name, text_match

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
        org = self.actor.org_id
        groups = []

        def run(kind, title, columns, model, expressions, order, make):
            match = text_match(dialect, q, expressions)
            stmt = select(*columns).where(model.org_id == org, match.clause)
            stmt = stmt.order_by(match.score.desc(), *order).limit(LIMIT)
            hits = [make(row) for row in self.session.execute(stmt)]
            if hits:
                groups.append(SearchGroup(kind, title, hits))

        contact_name = full_name(Contact.first_name, Contact.last_name)
        run("contact", "Contacts", (Contact.id, contact_name, Contact.email), Contact,
            [contact_name, Contact.email], (Contact.last_name, Contact.id),
            lambda r: SearchHit("contact", r[0], r[1].strip(), r[2] or ""))
        run("company", "Companies", (Company.id, Company.name, Company.city), Company,
            [Company.name], (Company.name, Company.id),
            lambda r: SearchHit("company", r[0], r[1], r[2] or ""))
        lead_name = full_name(Lead.first_name, Lead.last_name)
        run("lead", "Leads", (Lead.id, lead_name, Lead.company_name), Lead,
            [lead_name, Lead.email, Lead.company_name], (Lead.last_name, Lead.id),
            lambda r: SearchHit("lead", r[0], r[1].strip(), r[2] or ""))
        run("deal", "Deals", (Deal.id, Deal.name, Deal.status), Deal,
            [Deal.name], (Deal.name, Deal.id),
            lambda r: SearchHit("deal", r[0], r[1], r[2] or ""))
        return groups

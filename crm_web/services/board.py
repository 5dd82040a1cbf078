"""The kanban board: its columns, "load more" and moving a deal between and within columns.

The column headers are the deal tallies the database keeps (services/stats/tallies.py; one GROUP BY
stage over the deals when the board is filtered, cached per filter until a deal changes), plus one
select of the first cards of every column (a UNION ALL of per-stage index scans; tags in one
selectin load): the statement count never grows with the number of stages or deals. A move goes
through the stage rule (services/deal_stages.py) and rewrites one row: positions are fractional.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, union_all
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql.util import find_tables

from crm_web.custom_fields import user_name_expression
from crm_web.errors import BadRequest, Conflict, NotFound
from crm_web.models import Company, Contact, Deal, PipelineStage, User, utcnow
from crm_web.services.base import BaseService
from crm_web.services.cache import cache_prefetch
from crm_web.services.currencies import Amounts, Converted, Unconverted, org_rates
from crm_web.services.custom_fields import entity_fields
from crm_web.services.deal_stages import apply_stage
from crm_web.services.deals import DealService
from crm_web.services.pipeline_catalog import PipelineCatalog, PipelineInfo, StageInfo
from crm_web.services.stats import tallies
from crm_web.services.stats.cache import cached_stats, stats_key
from crm_web.services.stats.formula import weighted_value

# Cards per column before "Load more": rendering cards, not SQL, is most of the board's time.
BOARD_PAGE_SIZE = 20
# The tables a filtered board's headers may be cached over: a committed write to any of them starts
# a new generation of the organisation's deal numbers (cache_versions.DOMAINS_OF_TABLE). A filter
# that reads another table (a tag, a company) is aggregated on every view.
CACHED_FILTER_TABLES = frozenset({"deals", "pipelines", "pipeline_stages"})


@dataclass(frozen=True)
class ColumnStats:
    """A column's (or the board's) deals: values in the pipeline's currency (services/currencies.py),
    deals in a currency without a rate counted but listed apart."""

    count: int = 0
    total: Decimal = Decimal("0")
    weighted: Decimal = Decimal("0")
    currency: str = ""
    unconverted: tuple[Unconverted, ...] = ()

    @classmethod
    def of(cls, converted: Converted) -> ColumnStats:
        return cls(converted.count, converted.value, converted.weighted, converted.currency, converted.unconverted)


def sum_stats(stats: Iterable[ColumnStats]) -> ColumnStats:
    """Columns of one pipeline added up (they share its currency); the unconverted merged per currency."""
    rows = list(stats)
    apart: dict[str, tuple[int, Decimal]] = {}
    for row in rows:
        for item in row.unconverted:
            count, value = apart.get(item.currency, (0, Decimal("0")))
            apart[item.currency] = (count + item.count, value + item.value)
    return ColumnStats(
        count=sum(s.count for s in rows),
        total=sum((s.total for s in rows), Decimal("0")),
        weighted=sum((s.weighted for s in rows), Decimal("0")),
        currency=next((s.currency for s in rows if s.currency), ""),
        unconverted=tuple(Unconverted(c, n, v) for c, (n, v) in sorted(apart.items())),
    )


@dataclass
class BoardColumn:
    stage: StageInfo
    stats: ColumnStats
    cards: list[Deal]

    @property
    def has_more(self) -> bool:
        return not self.stage.is_closed and self.stats.count > len(self.cards)


@dataclass
class Board:
    pipeline: PipelineInfo | None
    pipelines: list[PipelineInfo]
    columns: list[BoardColumn]
    today: date

    @property
    def totals(self) -> ColumnStats:
        """The board's headline: its open stages (the sum of their aggregates, not of the loaded cards).
        Won and lost are shown apart, as this period's closed columns."""
        return sum_stats(c.stats for c in self.columns if not c.stage.is_closed)


@dataclass
class ColumnPage:
    pipeline: PipelineInfo
    stage: StageInfo
    cards: list[Deal]
    offset: int
    next_offset: int | None
    today: date


@dataclass
class MoveResult:
    deal: Deal
    pipeline: PipelineInfo
    from_stage: StageInfo | None
    to_stage: StageInfo
    stats: dict[uuid.UUID, ColumnStats] = field(default_factory=dict)

    @property
    def columns(self) -> list[tuple[StageInfo, ColumnStats]]:
        """The affected columns (one when the deal stayed in its stage) with their new header numbers."""
        stages = (
            [self.to_stage]
            if self.from_stage is None or self.from_stage.id == self.to_stage.id
            else [self.from_stage, self.to_stage]
        )
        return [(stage, self.stats.get(stage.id, ColumnStats())) for stage in stages]

    @property
    def totals(self) -> ColumnStats:
        """The board's headline after the move: its open stages (the same aggregate)."""
        stages = {s.id for s in self.pipeline.stages if not s.is_closed}
        return sum_stats(s for stage_id, s in self.stats.items() if stage_id in stages)


class BoardService(BaseService[Deal]):
    """The board of one organisation's pipeline; moves follow the deal rules (owner or manager)."""

    model = Deal
    entity_type = "deal"

    @property
    def deals(self) -> DealService:
        return DealService(self.actor, self.session)

    @property
    def pipelines(self) -> PipelineCatalog:
        return PipelineCatalog(self.actor, self.session)

    def column_stats(
        self, pipeline_id: uuid.UUID, criteria: Sequence[ColumnElement[bool]] = (), *, currency: str | None = None
    ) -> dict[uuid.UUID, ColumnStats]:
        """Count, total and weighted value per stage of the filtered set, in the pipeline's currency:
        one GROUP BY stage and currency."""
        currency = currency or self.pipelines.pipeline_get(pipeline_id).currency
        rates = org_rates(self.org_id, self.session)
        since = datetime.combine(period_start(), time.min, tzinfo=UTC)
        stmt = (
            select(
                Deal.stage_id,
                Deal.currency,
                func.count(Deal.id),
                func.coalesce(func.sum(Deal.value), 0),
                func.coalesce(func.sum(weighted_value()), 0),
            )
            .select_from(Deal)
            .outerjoin(PipelineStage, PipelineStage.id == Deal.stage_id)
            .where(
                Deal.org_id == self.org_id,
                Deal.pipeline_id == pipeline_id,
                or_(Deal.status == "open", Deal.closed_at >= since),  # closed: this period's only
                *criteria,
            )
            .group_by(Deal.stage_id, Deal.currency)
        )
        found = self._filtered_amounts(stmt, criteria)
        return {stage_id: ColumnStats.of(amounts.convert(rates, currency)) for stage_id, amounts in found.items()}

    def _filtered_amounts(self, stmt: Any, criteria: Sequence[ColumnElement[bool]]) -> dict[uuid.UUID, Amounts]:
        """The aggregate `stmt` per stage, before conversion; cached like the whole board's headers (until
        a deal or pipeline changes) when the criteria read only tables whose writes start a new
        generation of the deal numbers (services/cache_versions.py), keyed by the statement itself
        (its SQL and parameters: the filter, the search, the owner, the period)."""

        def compute() -> dict[uuid.UUID, Amounts]:
            found: dict[uuid.UUID, Amounts] = {}
            for stage_id, deal_currency, count, total, weighted in self.session.execute(stmt):
                found.setdefault(stage_id, Amounts()).add(deal_currency, int(count), total, weighted)
            return found

        read = {
            getattr(table, "name", "")
            for criterion in criteria
            for table in find_tables(criterion, check_columns=True, include_aliases=True)
            if table is not None  # a literal's or a label's column has no table
        }
        if not read <= CACHED_FILTER_TABLES:
            return compute()
        compiled = stmt.compile(dialect=self.session.get_bind().dialect)
        params = sorted((name, repr(value)) for name, value in compiled.params.items())
        digest = hashlib.sha256(f"{compiled}\n{params}".encode()).hexdigest()
        return cached_stats(self.org_id, "deals", f"board_filtered:{digest}", compute)

    def stage_amounts(self) -> dict[uuid.UUID, Amounts]:
        """Count, value and weighted value per currency of every stage's live deals (open, or closed
        this period: services/stats/tallies.py), before any conversion."""
        totals: dict[uuid.UUID, Amounts] = {}
        for stage_id, currency, deals, value, weighted in tallies.stage_sums(
            self.session, self.org_id, closed_since=period_start()
        ):
            totals.setdefault(stage_id, Amounts()).add(currency, deals, value, weighted)
        return totals

    def whole_board_stats(self) -> dict[uuid.UUID, ColumnStats]:
        """Every stage's live deals, unfiltered: from the tallies the database keeps, cached until a
        deal changes."""
        return self.stage_totals(cached_stats(self.org_id, "deals", _columns_key(), self.stage_amounts))

    def stage_totals(self, amounts: dict[uuid.UUID, Amounts] | None = None) -> dict[uuid.UUID, ColumnStats]:
        """Every stage's live deals in its pipeline's currency, from the tallies."""
        if amounts is None:
            amounts = self.stage_amounts()
        rates = org_rates(self.org_id, self.session)
        currency_of = {s.id: p.currency for p in self.pipelines.pipeline_list() for s in p.stages}
        return {
            stage_id: ColumnStats.of(found.convert(rates, currency_of.get(stage_id, rates.base)))
            for stage_id, found in amounts.items()
        }

    def board(
        self,
        *,
        pipeline_id: uuid.UUID | None = None,
        filter_spec: Any = None,
        q: str = "",
        scope: str = "all",
        per_column: int = BOARD_PAGE_SIZE,
        today: date | None = None,
    ) -> Board:
        """The kanban board: headers from the tallies (or one aggregate when filtered), the first cards of
        every column from one select."""
        # The cached entries the board reads, in one round trip to the cache (services/cache.py).
        cache_prefetch(
            self.pipelines.list_key(),
            stats_key(self.org_id, "deals", _columns_key()),
            stats_key(self.org_id, "rates", "rates"),
        )
        pipeline, pipelines = self.pipelines.board_pipeline(pipeline_id)
        today = today or self.actor.today()
        if pipeline is None:
            return Board(pipeline=None, pipelines=pipelines, columns=[], today=today)
        criteria = self.deals.criteria(filter_spec=filter_spec, q=q, scope=scope)
        if criteria:
            stats = self.column_stats(pipeline.id, criteria, currency=pipeline.currency)
        else:
            stats = self.whole_board_stats()
        # One branch per stage, each an index range scan (org, pipeline, stage, position) that stops
        # after per_column rows; a window over the whole pipeline would sort every deal.
        firsts = []
        for stage in pipeline.open_stages:  # closed columns show this period's numbers, not cards
            first = (
                self.scoped(select(Deal.id))
                .where(Deal.pipeline_id == pipeline.id, Deal.stage_id == stage.id, *criteria)
                .order_by(Deal.position, Deal.id)
                .limit(per_column)
                .subquery()
            )
            firsts.append(select(first.c.id))  # wrapped: SQLite refuses LIMIT inside a UNION branch
        cards = (
            self._cards(
                select(Deal)
                .where(Deal.id.in_(union_all(*firsts)))
                .options(*card_loads())
                .order_by(Deal.position, Deal.id)
            )
            if firsts
            else []
        )
        by_stage: dict[uuid.UUID | None, list[Deal]] = {}
        for card in cards:
            by_stage.setdefault(card.stage_id, []).append(card)
        columns = [
            BoardColumn(stage=stage, stats=stats.get(stage.id, ColumnStats()), cards=by_stage.get(stage.id, []))
            for stage in pipeline.stages
        ]
        return Board(pipeline=pipeline, pipelines=pipelines, columns=columns, today=today)

    def column(
        self,
        stage_id: uuid.UUID,
        *,
        filter_spec: Any = None,
        q: str = "",
        scope: str = "all",
        offset: int = 0,
        limit: int = BOARD_PAGE_SIZE,
        today: date | None = None,
    ) -> ColumnPage:
        """ "Load more": the next page of one column only."""
        pipeline, stage = self.pipelines.stage_lookup(stage_id)
        criteria = self.deals.criteria(filter_spec=filter_spec, q=q, scope=scope)
        cards = self._cards(
            self.scoped()
            .where(Deal.pipeline_id == pipeline.id, Deal.stage_id == stage.id, *criteria)
            .options(*card_loads())
            .order_by(Deal.position, Deal.id)
            .offset(offset)
            .limit(limit + 1)
        )
        more = len(cards) > limit
        return ColumnPage(
            pipeline=pipeline,
            stage=stage,
            cards=cards[:limit],
            offset=offset,
            next_offset=offset + limit if more else None,
            today=today or self.actor.today(),
        )

    def _cards(self, stmt: Any) -> list[Deal]:
        """The cards of `stmt` (a select of deals), each with `card_user_names` ({field key: name})
        for the organisation's deal fields of type user: the names come with the cards, as correlated
        subqueries of the same statement, not from a statement of their own."""
        fields = [cf for cf in entity_fields(self.session, self.org_id, "deal") if cf.type == "user"]
        if not fields:
            return list(self.session.scalars(stmt).unique().all())
        columns = [user_name_expression(Deal, cf, User, self.dialect) for cf in fields]
        cards = []
        for deal, *names in self.session.execute(stmt.add_columns(*columns)).unique():
            # A plain attribute for the card template (deal_card.html), not a mapped column.
            deal.card_user_names = {cf.key: name for cf, name in zip(fields, names, strict=True) if name}
            cards.append(deal)
        return cards

    def move(
        self,
        deal_id: uuid.UUID,
        *,
        stage_id: uuid.UUID,
        before_id: uuid.UUID | None = None,
        after_id: uuid.UUID | None = None,
        version: int | None = None,
        lost_reason: str | None = None,
        filter_spec: Any = None,
        q: str = "",
        scope: str = "all",
    ) -> MoveResult:
        """Move a deal to a stage of its pipeline, between two neighbours (one row rewritten)."""
        wanted = [deal_id, *(i for i in (before_id, after_id) if i is not None)]
        # The deal and its neighbours in one statement, with what the moved card shows (the answer
        # re-renders it: its days in stage restart and its rotting state goes).
        loads = [joinedload(Deal.company), joinedload(Deal.contact), joinedload(Deal.owner), joinedload(Deal.tags)]
        found = self.session.scalars(self.scoped().where(Deal.id.in_(wanted)).options(*loads)).unique()
        rows = {d.id: d for d in found}
        deal = rows.get(deal_id)
        if deal is None:
            raise NotFound("That deal does not exist or was deleted.")
        self.check_can_modify(deal)
        if version is not None and deal.version != version:
            raise Conflict("This deal was changed by someone else meanwhile. Reload the board and try again.")
        pipeline, to_stage = self.pipelines.stage_lookup(stage_id)
        if deal.pipeline_id is not None and to_stage.pipeline_id != deal.pipeline_id:
            raise BadRequest("A deal can only move to a stage of its own pipeline.")
        from_stage = pipeline.stage(deal.stage_id)
        position = _position_between(
            _neighbour(rows.get(before_id) if before_id else None, to_stage.id, deal_id),
            _neighbour(rows.get(after_id) if after_id else None, to_stage.id, deal_id),
            deal.position,
        )
        changes = apply_stage(deal, to_stage, lost_reason=lost_reason)
        deal.position = position
        if from_stage is None or from_stage.id != to_stage.id:
            changes["stage"] = [from_stage.name if from_stage else None, to_stage.name]
            changes.pop("stage_id", None)
        self.history(deal, "moved", changes)
        self.commit()
        # Every stage's numbers at once: the board totals change with the headers. The unfiltered
        # board's come from the tallies (and fill the cache the next view of the board reads).
        criteria = self.deals.criteria(filter_spec=filter_spec, q=q, scope=scope)
        if criteria:
            stats = self.column_stats(pipeline.id, criteria, currency=pipeline.currency)
        else:
            stats = self.whole_board_stats()
        return MoveResult(deal=deal, pipeline=pipeline, from_stage=from_stage, to_stage=to_stage, stats=stats)


def card_loads() -> tuple[Any, ...]:
    """What a card shows of its company, contact and owner (components/deal_card.html): their names,
    not every column of three more records per card (their custom values parsed from JSON included).
    Anything else read from them raises instead of loading."""
    return (
        joinedload(Deal.company).load_only(Company.name, raiseload=True),
        joinedload(Deal.contact).load_only(Contact.first_name, Contact.last_name, raiseload=True),
        joinedload(Deal.owner).load_only(User.name, raiseload=True),
        selectinload(Deal.tags),
    )


def _columns_key() -> str:
    """The cache entry of the unfiltered board's numbers (their closed columns count this period's)."""
    return f"board_columns:{period_start()}"


def period_start() -> date:
    """The first day of this month (UTC, as the tallies' closing months): the period whose won and
    lost deals the board's closed columns count."""
    return utcnow().date().replace(day=1)


def _neighbour(deal: Deal | None, stage_id: uuid.UUID, moving_id: uuid.UUID) -> float | None:
    """A neighbour's position, if it really sits in the target column (a stale page may lie)."""
    if deal is None or deal.id == moving_id or deal.stage_id != stage_id:
        return None
    return deal.position


def _position_between(before: float | None, after: float | None, current: float) -> float:
    """Fractional ordering: the midpoint of the neighbours, or one step beyond the only one."""
    if before is not None and after is not None:
        low, high = sorted((before, after))
        return (low + high) / 2
    if before is not None:
        return before + 1.0
    if after is not None:
        return after - 1.0
    return current

"""Deals: the list, the kanban board, and the one stage-transition rule every entry point uses.

The rule (`apply_stage` for one deal, `bulk_transition_values` for an UPDATE of many):
entering a won stage makes the deal won and stamps closed_at; entering a lost stage makes it
lost (with an optional reason) and stamps closed_at; entering an open stage from a closed
state reopens it. A deal's own probability is kept (None means "follow the stage"); the
weighted value formula in services/forecast.py counts won deals 100 % and lost deals 0.

The board's column headers are the deal tallies the database keeps (services/tallies.py; one
GROUP BY stage over the deals when the board is filtered), plus one select of the first cards of
every column (a UNION ALL of per-stage index scans; tags in one selectin load): the statement
count never grows with the number of stages or deals.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, case, func, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from crm_web.errors import BadRequest, Conflict, NotFound, ValidationError
from crm_web.models import Company, Contact, Deal, RecordHistory, User, utcnow
from crm_web.services import tallies
from crm_web.services.base import BaseService, Page, integrity_to_validation
from crm_web.services.forecast import weighted_value
from crm_web.services.history import history_for, snapshot_changes
from crm_web.services.pipelines import PipelineInfo, PipelineService, StageInfo
from crm_web.services.stats_cache import cached_stats
from crm_web.services.text_search import text_match

# Cards per column before "Load more": rendering cards, not SQL, is most of the board's time
# (50 per column was ~300 cards and ~150 ms of templating; docs/benchmarks.md).
BOARD_PAGE_SIZE = 20
EXPORT_LIMIT = 50_000
CHOICE_LIMIT = 500


# --- the stage-transition rule --------------------------------------------------------------


def apply_stage(
    deal: Deal, stage: StageInfo, *, lost_reason: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Put `deal` in `stage` with the status that stage implies; returns {field: [old, new]}."""
    now = now or utcnow()
    values: dict[str, Any] = {}
    if deal.stage_id != stage.id or deal.pipeline_id != stage.pipeline_id:
        values.update(stage_id=stage.id, pipeline_id=stage.pipeline_id, stage_changed_at=now)
        if stage.is_won and deal.status != "won":
            values.update(status="won", closed_at=now, lost_reason=None)
        elif stage.is_lost and deal.status != "lost":
            values.update(status="lost", closed_at=now)
        elif not stage.is_closed and deal.status != "open":
            values.update(status="open", closed_at=None, lost_reason=None)
    if stage.is_lost and lost_reason:
        values["lost_reason"] = lost_reason.strip()[:255]
    changes = snapshot_changes(deal, values, ignored={"stage_changed_at", "pipeline_id"})
    for name, value in values.items():
        setattr(deal, name, value)
    return changes


def bulk_transition_values(stage: StageInfo) -> dict[str, Any]:
    """The same rule as `apply_stage`, as UPDATE ... SET values for many deals at once."""
    now = literal(utcnow(), Deal.closed_at.type)
    values: dict[str, Any] = {"stage_id": stage.id, "stage_changed_at": now}
    if stage.is_won:
        values.update(status="won", closed_at=case((Deal.status == "won", Deal.closed_at), else_=now))
    elif stage.is_lost:
        values.update(status="lost", closed_at=case((Deal.status == "lost", Deal.closed_at), else_=now))
    else:
        values.update(status="open", closed_at=None)
    return values


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnStats:
    count: int = 0
    total: Decimal = Decimal("0")
    weighted: Decimal = Decimal("0")


@dataclass
class BoardColumn:
    stage: StageInfo
    stats: ColumnStats
    cards: list[Deal]

    @property
    def has_more(self) -> bool:
        return self.stats.count > len(self.cards)


@dataclass
class Board:
    pipeline: PipelineInfo | None
    pipelines: list[PipelineInfo]
    columns: list[BoardColumn]
    today: date

    @property
    def totals(self) -> ColumnStats:
        """The whole (filtered) board: the sum of the column aggregates, not of the loaded cards."""
        return ColumnStats(
            count=sum(c.stats.count for c in self.columns),
            total=sum((c.stats.total for c in self.columns), Decimal("0")),
            weighted=sum((c.stats.weighted for c in self.columns), Decimal("0")),
        )


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
        """The whole filtered board after the move (the same aggregate, every stage)."""
        stages = {s.id for s in self.pipeline.stages}
        rows = [s for stage_id, s in self.stats.items() if stage_id in stages]
        return ColumnStats(
            count=sum(s.count for s in rows),
            total=sum((s.total for s in rows), Decimal("0")),
            weighted=sum((s.weighted for s in rows), Decimal("0")),
        )


@dataclass
class DealDetail:
    deal: Deal
    pipeline: PipelineInfo | None
    stage: StageInfo | None
    history: list[RecordHistory]


@dataclass
class DealChoices:
    """Options of the deal form's selects."""

    pipelines: list[PipelineInfo]
    companies: list[tuple[uuid.UUID, str]]
    contacts: list[tuple[uuid.UUID, str]]
    owners: list[tuple[uuid.UUID, str]]


class DealService(BaseService[Deal]):
    """Deals of one organisation; sales reps change their own deals, managers any."""

    model = Deal
    entity_type = "deal"
    SORT_FIELDS: ClassVar[dict[str, Any]] = {
        "name": Deal.name,
        "value": Deal.value,
        "expected_close_date": Deal.expected_close_date,
        "status": Deal.status,
        "closed_at": Deal.closed_at,
        "probability": Deal.probability,
    }
    DEFAULT_SORT = "-created_at"
    WRITABLE_FIELDS = frozenset(
        {
            "name",
            "value",
            "currency",
            "probability",
            "expected_close_date",
            "source",
            "description",
            "contact_id",
            "company_id",
            "owner_id",
            "lost_reason",
        }
    )

    @property
    def FILTER_FIELD_MAP(self):
        from crm_web.filters.fields import DEAL_FILTERS

        return DEAL_FILTERS

    @property
    def pipelines(self) -> PipelineService:
        return PipelineService(self.actor, self.session)

    # --- reading -----------------------------------------------------------------

    @staticmethod
    def _card_loads() -> list[Any]:
        return [joinedload(Deal.company), joinedload(Deal.contact), joinedload(Deal.owner), selectinload(Deal.tags)]

    def optimized_query(self):
        return self.scoped().options(*self._card_loads(), joinedload(Deal.stage))

    def criteria(self, *, filter_spec: Any = None, q: str = "", scope: str = "all") -> list[ColumnElement[bool]]:
        """The list/board filter: the filter builder's spec, the search box and the "mine" scope."""
        clauses: list[ColumnElement[bool]] = []
        clause = self.filter_clause(filter_spec)
        if clause is not None:
            clauses.append(clause)
        match = text_match(self.dialect, q, [Deal.name])
        if match is not None:  # the exact words, like every list's search box (no typo tier on the board)
            clauses.append(match.clause)
        if scope == "mine":
            clauses.append(Deal.owner_id == self.actor.user_id)
        return clauses

    def deal_list(
        self,
        *,
        filter_spec: Any = None,
        q: str = "",
        scope: str = "all",
        sort: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> Page[Deal]:
        """One page of deals: a count, the rows with their relations joined, and the tags."""
        return self.paginate(
            self.optimized_query(),
            criteria=self.criteria(filter_spec=filter_spec, q=q, scope=scope),
            sort=sort,
            page=page,
            per_page=per_page,
        )

    def deal_export(
        self, *, filter_spec: Any = None, q: str = "", scope: str = "all", sort: str | None = None
    ) -> Iterator[list[Any]]:
        """CSV rows (header first) of the whole filtered list, streamed in batches.

        Bad input (an unknown sort) raises here, before the response starts streaming."""
        stmt = (
            self.scoped()
            .options(
                joinedload(Deal.company), joinedload(Deal.contact), joinedload(Deal.owner), selectinload(Deal.tags)
            )
            .where(*self.criteria(filter_spec=filter_spec, q=q, scope=scope))
            .order_by(*self.sort_clause(sort))
            .limit(EXPORT_LIMIT)
            .execution_options(yield_per=500)
        )
        return self._export_lines(stmt)

    def _export_lines(self, stmt: Any) -> Iterator[list[Any]]:
        yield [
            "Name",
            "Value",
            "Currency",
            "Status",
            "Pipeline",
            "Stage",
            "Probability",
            "Expected close",
            "Company",
            "Contact",
            "Owner",
            "Tags",
            "Created",
        ]
        names = {p.id: p for p in self.pipelines.pipeline_list()}
        for deal in self.session.scalars(stmt):
            pipeline = names.get(deal.pipeline_id)
            stage = pipeline.stage(deal.stage_id) if pipeline else None
            yield [
                deal.name,
                f"{deal.value:.2f}",
                deal.currency,
                deal.status,
                pipeline.name if pipeline else "",
                stage.name if stage else "",
                "" if deal.probability is None else deal.probability,
                deal.expected_close_date.isoformat() if deal.expected_close_date else "",
                deal.company.name if deal.company else "",
                deal.contact.full_name if deal.contact else "",
                deal.owner.name if deal.owner else "",
                ", ".join(t.name for t in deal.tags),
                deal.created_at.date().isoformat(),
            ]

    def deal_detail(self, deal_id: uuid.UUID) -> DealDetail:
        """The deal with its relations, its pipeline and stage (cached) and its history."""
        deal = self.get(deal_id)
        pipeline = next((p for p in self.pipelines.pipeline_list() if p.id == deal.pipeline_id), None)
        history = history_for(self.actor, self.entity_type, deal.id, session=self.session)
        return DealDetail(
            deal=deal, pipeline=pipeline, stage=pipeline.stage(deal.stage_id) if pipeline else None, history=history
        )

    def form_choices(self) -> DealChoices:
        """Pipelines (cached), companies, contacts and active users for the deal form."""
        companies = self.session.execute(
            select(Company.id, Company.name)
            .where(Company.org_id == self.org_id)
            .order_by(Company.name)
            .limit(CHOICE_LIMIT)
        ).all()
        contacts = self.session.execute(
            select(Contact.id, Contact.first_name, Contact.last_name)
            .where(Contact.org_id == self.org_id)
            .order_by(Contact.first_name, Contact.last_name)
            .limit(CHOICE_LIMIT)
        ).all()
        return DealChoices(
            pipelines=self.pipelines.pipeline_list(),
            companies=[(row.id, row.name) for row in companies],
            contacts=[(row.id, f"{row.first_name} {row.last_name}".strip()) for row in contacts],
            owners=self.owner_choices(),
        )

    # --- the board ---------------------------------------------------------------

    def column_stats(
        self, pipeline_id: uuid.UUID, criteria: Sequence[ColumnElement[bool]] = ()
    ) -> dict[uuid.UUID, ColumnStats]:
        """Count, total and weighted value per stage of the filtered set: one GROUP BY stage."""
        from crm_web.models import PipelineStage

        stmt = (
            select(
                Deal.stage_id,
                func.count(Deal.id),
                func.coalesce(func.sum(Deal.value), 0),
                func.coalesce(func.sum(weighted_value()), 0),
            )
            .select_from(Deal)
            .outerjoin(PipelineStage, PipelineStage.id == Deal.stage_id)
            .where(Deal.org_id == self.org_id, Deal.pipeline_id == pipeline_id, *criteria)
            .group_by(Deal.stage_id)
        )
        return {
            stage_id: ColumnStats(count=int(count), total=Decimal(total or 0), weighted=Decimal(weighted or 0))
            for stage_id, count, total, weighted in self.session.execute(stmt)
        }

    def stage_totals(self) -> dict[uuid.UUID, ColumnStats]:
        """Count, total and weighted value of every stage's live deals (services/tallies.py)."""
        totals: dict[uuid.UUID, ColumnStats] = {}
        for group in tallies.deal_groups(self.session, self.org_id):
            if group.stage_id is not None:
                current = totals.get(group.stage_id, ColumnStats())
                totals[group.stage_id] = ColumnStats(
                    count=current.count + group.deals,
                    total=current.total + group.value,
                    weighted=current.weighted + group.weighted,
                )
        return totals

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
        pipeline, pipelines = self.pipelines.board_pipeline(pipeline_id)
        today = today or date.today()
        if pipeline is None:
            return Board(pipeline=None, pipelines=pipelines, columns=[], today=today)
        criteria = self.criteria(filter_spec=filter_spec, q=q, scope=scope)
        if criteria:
            stats = self.column_stats(pipeline.id, criteria)
        else:  # the whole pipeline: from the tallies the database keeps, cached until a deal changes
            stats = cached_stats(self.org_id, "deals", "board_columns", self.stage_totals)
        # One branch per stage, each an index range scan (org, pipeline, stage, position) that stops
        # after per_column rows; a window over the whole pipeline sorted every deal (0.8 s at 40k).
        firsts = []
        for stage in pipeline.stages:
            first = (
                self.scoped(select(Deal.id))
                .where(Deal.pipeline_id == pipeline.id, Deal.stage_id == stage.id, *criteria)
                .order_by(Deal.position, Deal.id)
                .limit(per_column)
                .subquery()
            )
            firsts.append(select(first.c.id))  # wrapped: SQLite refuses LIMIT inside a UNION branch
        cards = (
            self.session.scalars(
                select(Deal)
                .where(Deal.id.in_(union_all(*firsts)))
                .options(*self._card_loads())
                .order_by(Deal.position, Deal.id)
            )
            .unique()
            .all()
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

    def board_column(
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
        criteria = self.criteria(filter_spec=filter_spec, q=q, scope=scope)
        cards = list(
            self.session.scalars(
                self.scoped()
                .where(Deal.pipeline_id == pipeline.id, Deal.stage_id == stage.id, *criteria)
                .options(*self._card_loads())
                .order_by(Deal.position, Deal.id)
                .offset(offset)
                .limit(limit + 1)
            )
            .unique()
            .all()
        )
        more = len(cards) > limit
        return ColumnPage(
            pipeline=pipeline,
            stage=stage,
            cards=cards[:limit],
            offset=offset,
            next_offset=offset + limit if more else None,
            today=today or date.today(),
        )

    # --- moving ------------------------------------------------------------------

    def deal_move(
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
        # The deal and its neighbours in one statement.
        rows = {d.id: d for d in self.session.scalars(self.scoped().where(Deal.id.in_(wanted)))}
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
        # Every stage in the same one aggregate: the board totals change with the headers.
        stats = self.column_stats(pipeline.id, self.criteria(filter_spec=filter_spec, q=q, scope=scope))
        return MoveResult(deal=deal, pipeline=pipeline, from_stage=from_stage, to_stage=to_stage, stats=stats)

    # --- writing -----------------------------------------------------------------

    def clean(self, values: dict[str, Any], obj: Deal | None = None) -> dict[str, Any]:
        """Names are required; linked company, contact and owner must belong to this organisation."""
        if "name" in values:
            values["name"] = (values["name"] or "").strip()
            if not values["name"]:
                raise ValidationError("Please correct the highlighted fields", {"name": "A deal needs a name."})
        for key, model in (("company_id", Company), ("contact_id", Contact), ("owner_id", User)):
            if values.get(key) is not None:
                found = self.session.scalar(
                    select(model.id).where(model.org_id == self.org_id, model.id == values[key])
                )
                if found is None:
                    raise ValidationError("Please correct the highlighted fields", {key: "That record does not exist."})
        return values

    def deal_create(self, *, stage_id: uuid.UUID, tag_ids: Sequence[uuid.UUID] = (), **values: Any) -> Deal:
        """A new deal goes to the top of its stage's column; the stage decides its status."""
        values = self.clean(self._writable(values))
        _, stage = self.pipelines.stage_lookup(stage_id)
        deal = Deal(org_id=self.org_id, **values)
        if "owner_id" not in values or deal.owner_id is None:
            deal.owner_id = values.get("owner_id") or self.actor.user_id
        top = self.session.scalar(
            select(func.min(Deal.position)).where(Deal.org_id == self.org_id, Deal.stage_id == stage.id)
        )
        deal.position = (top - 1.0) if top is not None else 0.0
        deal.status = "open"
        apply_stage(deal, stage, lost_reason=values.get("lost_reason"))
        self._set_tags(deal, tag_ids, new=True)
        self.session.add(deal)
        try:
            self.session.flush()
        except IntegrityError as error:
            self.session.rollback()
            raise integrity_to_validation(error) from error
        self.history(deal, "created")
        self.commit()
        return deal

    def deal_update(
        self,
        deal_id: uuid.UUID,
        *,
        stage_id: uuid.UUID | None = None,
        tag_ids: Sequence[uuid.UUID] | None = None,
        expected_version: int | None = None,
        **values: Any,
    ) -> Deal:
        """Edit a deal; a stage change goes through the same rule as a board move. A form rendered
        from an older version is refused (BaseService.check_version)."""
        deal = self.get(deal_id, query=self.scoped().options(selectinload(Deal.tags)))
        self.check_can_modify(deal)
        self.check_version(deal, expected_version)
        values = self.clean(self._writable(values), deal)
        changes = snapshot_changes(deal, values, ignored=self.HISTORY_IGNORED)
        for name, value in values.items():
            setattr(deal, name, value)
        if stage_id is not None and stage_id != deal.stage_id:
            _, stage = self.pipelines.stage_lookup(stage_id)
            changes.update(apply_stage(deal, stage, lost_reason=values.get("lost_reason")))
        if tag_ids is not None:
            self._set_tags(deal, tag_ids)
        if changes:
            self.history(deal, "updated", changes)
        self.commit()
        return deal

    def _set_tags(self, deal: Deal, tag_ids: Sequence[uuid.UUID], *, new: bool = False) -> None:
        from crm_web.models import Tag

        tags = (
            list(self.session.scalars(select(Tag).where(Tag.org_id == self.org_id, Tag.id.in_(list(tag_ids)))))
            if tag_ids
            else []
        )
        if new:
            deal.tags = tags
        else:
            deal.tags[:] = tags

    def deal_mark_won(self, deal_id: uuid.UUID) -> Deal:
        """Won: into the pipeline's won stage when it has one (the move rule), else status only."""
        return self._close(deal_id, won=True)

    def deal_mark_lost(self, deal_id: uuid.UUID, *, lost_reason: str | None = None) -> Deal:
        """Lost, with an optional reason: into the pipeline's lost stage when it has one."""
        return self._close(deal_id, won=False, lost_reason=lost_reason)

    def _close(self, deal_id: uuid.UUID, *, won: bool, lost_reason: str | None = None) -> Deal:
        deal = self.get(deal_id, query=self.scoped())
        self.check_can_modify(deal)
        pipeline = self._pipeline_of(deal)
        stage = (pipeline.won_stage if won else pipeline.lost_stage) if pipeline else None
        if stage is not None:
            changes = apply_stage(deal, stage, lost_reason=lost_reason)
        else:
            values: dict[str, Any] = {"status": "won" if won else "lost", "closed_at": utcnow()}
            if not won and lost_reason:
                values["lost_reason"] = lost_reason.strip()[:255]
            changes = snapshot_changes(deal, values, ignored={"closed_at"})
            for name, value in values.items():
                setattr(deal, name, value)
        if changes:
            self.history(deal, "updated", changes)
        self.commit()
        return deal

    def deal_reopen(self, deal_id: uuid.UUID) -> Deal:
        """Reopen: a deal in a won/lost stage goes back to the last open stage of its pipeline."""
        deal = self.get(deal_id, query=self.scoped())
        self.check_can_modify(deal)
        pipeline = self._pipeline_of(deal)
        stage = pipeline.stage(deal.stage_id) if pipeline else None
        open_stages = pipeline.open_stages if pipeline else []
        if stage is not None and stage.is_closed and open_stages:
            changes = apply_stage(deal, open_stages[-1])
        else:
            values = {"status": "open", "closed_at": None, "lost_reason": None}
            changes = snapshot_changes(deal, values)
            for name, value in values.items():
                setattr(deal, name, value)
        if changes:
            self.history(deal, "updated", changes)
        self.commit()
        return deal

    def _pipeline_of(self, deal: Deal) -> PipelineInfo | None:
        if deal.pipeline_id is None:
            return None
        return next((p for p in self.pipelines.pipeline_list() if p.id == deal.pipeline_id), None)


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

"""Deals: the list, the detail page, the form's writes, won/lost/reopen and the CSV export.

A stage change goes through the one rule in services/deal_stages.py; the kanban board and its
moves are services/board.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import joinedload, selectinload

from crm_web.entities import DEAL
from crm_web.errors import ValidationError
from crm_web.models import Activity, Company, Contact, Deal, Tag, User, utcnow
from crm_web.services.base import BaseService
from crm_web.services.deal_stages import apply_stage
from crm_web.services.history import HistoryItem
from crm_web.services.pipeline_catalog import PipelineCatalog, PipelineInfo, StageInfo
from crm_web.services.sql import AnySelect
from crm_web.services.text_search import TextMatch, text_match

EXPORT_LIMIT = 50_000


# --- results --------------------------------------------------------------------------------


@dataclass
class DealDetail:
    deal: Deal
    pipeline: PipelineInfo | None
    stage: StageInfo | None
    history: list[HistoryItem]
    timeline: list[Activity] = field(default_factory=list)  # only the whole page's (detail) reads it


@dataclass
class DealRow:
    """One exported deal with its pipeline and stage (from the cached pipelines)."""

    deal: Deal
    pipeline: PipelineInfo | None
    stage: StageInfo | None


@dataclass
class DealChoices:
    """Options of the deal form's selects."""

    pipelines: list[PipelineInfo]
    owners: list[tuple[uuid.UUID, str]]


class DealService(BaseService[Deal]):
    """Deals of one organisation; sales reps change their own deals, managers any."""

    entity = DEAL
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
    def pipelines(self) -> PipelineCatalog:
        return PipelineCatalog(self.actor, self.session)

    # --- reading -----------------------------------------------------------------

    @staticmethod
    def row_loads() -> list[Any]:
        """What a deal list row and an export row read of the records a deal names (whole records)."""
        return [joinedload(Deal.company), joinedload(Deal.contact), joinedload(Deal.owner), selectinload(Deal.tags)]

    def edit_query(self) -> AnySelect:
        return self.scoped().options(selectinload(Deal.tags))

    def optimized_query(self) -> AnySelect:
        return self.scoped().options(*self.row_loads(), joinedload(Deal.stage))

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

    def list_criteria(
        self, *, filter_spec: Any = None, q: str = "", scope: str = "all"
    ) -> tuple[list[ColumnElement[bool]], TextMatch | None]:
        """The exact words only, no typo tier: the board filters by the same criteria."""
        return self.criteria(filter_spec=filter_spec, q=q, scope=scope), None

    def export_query(self) -> AnySelect:
        return self.scoped().options(*self.row_loads()).limit(EXPORT_LIMIT)

    def export_stream(self, stmt: AnySelect) -> Iterator[DealRow]:
        """Deals with their pipeline and stage from the cached pipelines."""
        pipelines = {p.id: p for p in self.pipelines.pipeline_list()}
        for deal in self.session.scalars(stmt):
            pipeline = pipelines.get(deal.pipeline_id)
            yield DealRow(deal, pipeline, pipeline.stage(deal.stage_id) if pipeline else None)

    def summary(self, deal_id: uuid.UUID) -> DealDetail:
        """The deal with its relations, its pipeline and stage (cached) and its history: what the
        page's summary and history cards show when they refresh."""
        deal = self.get(deal_id)
        pipeline = self.pipeline_of(deal)
        history = self.readable_history(deal.id)
        return DealDetail(
            deal=deal, pipeline=pipeline, stage=pipeline.stage(deal.stage_id) if pipeline else None, history=history
        )

    def detail(self, deal_id: uuid.UUID) -> DealDetail:
        """The whole deal page: its summary and its activity timeline."""
        detail = self.summary(deal_id)
        detail.timeline = self.activity_timeline(deal_id)
        return detail

    def form_choices(self) -> DealChoices:
        """Pipelines (cached) and active users for the deal form (its company and contact are pickers:
        services/pickers.py)."""
        from crm_web.services.pickers import OWNER_SELECT_LIMIT

        owners = self.owner_choices(limit=OWNER_SELECT_LIMIT + 1)
        return DealChoices(pipelines=self.pipelines.pipeline_list(), owners=owners)

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

    def create(  # type: ignore[override]
        self, *, stage_id: uuid.UUID, tag_ids: Sequence[uuid.UUID] = (), **values: Any
    ) -> Deal:
        """A new deal goes to the top of its stage's column; the stage decides its status."""
        raw_custom = values.pop("custom_input", None)
        values, custom = self.clean_with_custom(values, raw_custom)
        self.check_fits(values)
        _, stage = self.pipelines.stage_lookup(stage_id)
        deal = Deal(org_id=self.org_id, **values)
        if custom:
            deal.custom = custom
        if "owner_id" not in values or deal.owner_id is None:
            deal.owner_id = values.get("owner_id") or self.actor.user_id
        top = self.session.scalar(
            select(func.min(Deal.position)).where(Deal.org_id == self.org_id, Deal.stage_id == stage.id)
        )
        deal.position = (top - 1.0) if top is not None else 0.0
        deal.status = "open"
        apply_stage(deal, stage, lost_reason=values.get("lost_reason"))
        self._set_tags(deal, tag_ids, new=True)
        return self.insert(deal)

    def update(  # type: ignore[override]
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
        deal = self.get_for_edit(deal_id)
        self.check_version(deal, expected_version)
        raw_custom = values.pop("custom_input", None)
        values, custom = self.clean_with_custom(values, raw_custom, deal)
        self.check_fits(values)
        changes = self.set_values(deal, values)
        changes.update(self.set_custom(deal, custom))
        if stage_id is not None and stage_id != deal.stage_id:
            _, stage = self.pipelines.stage_lookup(stage_id)
            changes.update(apply_stage(deal, stage, lost_reason=values.get("lost_reason")))
        if tag_ids is not None:
            self._set_tags(deal, tag_ids)
        return self.save_changes(deal, changes)

    def _set_tags(self, deal: Deal, tag_ids: Sequence[uuid.UUID], *, new: bool = False) -> None:
        tags = (
            list(self.session.scalars(select(Tag).where(Tag.org_id == self.org_id, Tag.id.in_(list(tag_ids)))))
            if tag_ids
            else []
        )
        if new:
            deal.tags = tags
        else:
            deal.tags[:] = tags

    def mark_won(self, deal_id: uuid.UUID) -> Deal:
        """Won: into the pipeline's won stage when it has one (the move rule), else status only."""
        return self._close(deal_id, won=True)

    def mark_lost(self, deal_id: uuid.UUID, *, lost_reason: str | None = None) -> Deal:
        """Lost, with an optional reason: into the pipeline's lost stage when it has one."""
        return self._close(deal_id, won=False, lost_reason=lost_reason)

    def _close(self, deal_id: uuid.UUID, *, won: bool, lost_reason: str | None = None) -> Deal:
        deal = self.get_for_edit(deal_id, query=self.scoped())
        pipeline = self.pipeline_of(deal)
        stage = (pipeline.won_stage if won else pipeline.lost_stage) if pipeline else None
        if stage is not None:
            changes = apply_stage(deal, stage, lost_reason=lost_reason)
        else:
            values: dict[str, Any] = {"status": "won" if won else "lost", "closed_at": utcnow()}
            if not won and lost_reason:
                values["lost_reason"] = lost_reason.strip()[:255]
            changes = self.set_values(deal, values, ignored={"closed_at"})
        return self.save_changes(deal, changes)

    def reopen(self, deal_id: uuid.UUID) -> Deal:
        """Reopen: a deal in a won/lost stage goes back to the last open stage of its pipeline."""
        deal = self.get_for_edit(deal_id, query=self.scoped())
        pipeline = self.pipeline_of(deal)
        stage = pipeline.stage(deal.stage_id) if pipeline else None
        open_stages = pipeline.open_stages if pipeline else []
        if stage is not None and stage.is_closed and open_stages:
            changes = apply_stage(deal, open_stages[-1])
        else:
            values = {"status": "open", "closed_at": None, "lost_reason": None}
            changes = self.set_values(deal, values, ignored=())
        return self.save_changes(deal, changes)

    def pipeline_of(self, deal: Deal) -> PipelineInfo | None:
        if deal.pipeline_id is None:
            return None
        return next((p for p in self.pipelines.pipeline_list() if p.id == deal.pipeline_id), None)

"""Deal service: the stage-transition rule, moves, the board queries, list, create/update, won/lost/reopen."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm_web.entities import DEAL
from crm_web.errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationError
from crm_web.models import Deal, RecordHistory, utcnow
from crm_web.services.board import BOARD_PAGE_SIZE, BoardService
from crm_web.services.currencies import org_rates
from crm_web.services.deals import DealService
from tests import factories


@pytest.fixture
def manager(users):
    return factories.actor_for(users["manager"])


@pytest.fixture
def service(manager):
    return DealService(manager)


@pytest.fixture
def pipeline(org):
    return factories.make_pipeline(org)


@pytest.fixture
def stages(pipeline):
    return factories.stages_of(pipeline)  # Lead in, Proposal, Negotiation, Won, Lost


def fresh(service, deal_id):
    return service.session.get(Deal, deal_id, populate_existing=True)


# --- move semantics ------------------------------------------------------------------------


def test_move_into_won_then_lost_then_reopen(service, org, stages):
    deal = factories.make_deal(org, stage=stages[0], value=Decimal("500"))
    result = BoardService(service.actor).move(deal.id, stage_id=stages[3].id)
    assert result.deal.status == "won" and result.deal.closed_at is not None
    assert [s.id for s, _ in result.columns] == [stages[0].id, stages[3].id]
    won_at = result.deal.closed_at

    result = BoardService(service.actor).move(deal.id, stage_id=stages[4].id, lost_reason="Too expensive")
    deal = fresh(service, deal.id)
    assert deal.status == "lost" and deal.lost_reason == "Too expensive" and deal.closed_at >= won_at

    BoardService(service.actor).move(deal.id, stage_id=stages[1].id)
    deal = fresh(service, deal.id)
    assert deal.status == "open" and deal.closed_at is None and deal.lost_reason is None
    assert deal.stage_id == stages[1].id and deal.stage_changed_at is not None


def test_probability_follows_stage_unless_set_on_the_deal(service, org, stages, count_queries):
    follows = factories.make_deal(org, stage=stages[0], value=Decimal("1000"))
    own = factories.make_deal(org, stage=stages[0], value=Decimal("1000"), probability=25)
    BoardService(service.actor).move(follows.id, stage_id=stages[2].id)
    BoardService(service.actor).move(own.id, stage_id=stages[2].id)
    stats = BoardService(service.actor).column_stats(stages[2].pipeline_id)[stages[2].id]
    assert stats.count == 2
    assert stats.weighted == Decimal("800") + Decimal("250")
    assert fresh(service, own.id).probability == 25 and fresh(service, follows.id).probability is None


def test_move_records_history(service, org, stages):
    deal = factories.make_deal(org, stage=stages[0])
    BoardService(service.actor).move(deal.id, stage_id=stages[1].id)
    rows = service.session.query(RecordHistory).filter_by(entity_id=deal.id, action="moved").all()
    assert len(rows) == 1 and rows[0].changes["stage"] == ["Lead in", "Proposal"]


def test_move_positions_between_neighbours(service, org, stages):
    a = factories.make_deal(org, stage=stages[1], position=1.0)
    b = factories.make_deal(org, stage=stages[1], position=2.0)
    moving = factories.make_deal(org, stage=stages[0], position=0.0)
    BoardService(service.actor).move(moving.id, stage_id=stages[1].id, before_id=a.id, after_id=b.id)
    assert fresh(service, moving.id).position == 1.5
    BoardService(service.actor).move(moving.id, stage_id=stages[1].id, before_id=None, after_id=a.id)
    assert fresh(service, moving.id).position == 0.0
    BoardService(service.actor).move(moving.id, stage_id=stages[1].id, before_id=b.id)
    assert fresh(service, moving.id).position == 3.0
    # a neighbour from another column (a stale page) is ignored
    other = factories.make_deal(org, stage=stages[2], position=10.0)
    BoardService(service.actor).move(moving.id, stage_id=stages[1].id, before_id=other.id)
    assert fresh(service, moving.id).position == 3.0
    board = BoardService(service.actor).board(pipeline_id=stages[0].pipeline_id)
    assert [d.id for d in board.columns[1].cards] == [a.id, b.id, moving.id]


def test_move_errors(service, org, other_org, stages):
    deal = factories.make_deal(org, stage=stages[0])
    other_pipeline = factories.make_pipeline(org, is_default=False)
    with pytest.raises(BadRequest):
        BoardService(service.actor).move(deal.id, stage_id=factories.stages_of(other_pipeline)[0].id)
    foreign_deal = factories.make_deal(other_org)
    foreign_stage = factories.stages_of(factories.make_pipeline(other_org))[0]
    with pytest.raises(NotFound):
        BoardService(service.actor).move(foreign_deal.id, stage_id=stages[1].id)
    with pytest.raises(NotFound):
        BoardService(service.actor).move(deal.id, stage_id=foreign_stage.id)
    with pytest.raises(NotFound):
        BoardService(service.actor).move(uuid.uuid4(), stage_id=stages[1].id)
    with pytest.raises(Conflict):
        BoardService(service.actor).move(deal.id, stage_id=stages[1].id, version=deal.version + 5)


def test_sales_moves_only_own_deals(org, users, stages):
    sales = DealService(factories.actor_for(users["sales"]))
    theirs = factories.make_deal(org, stage=stages[0], owner_id=users["manager"].id)
    mine = factories.make_deal(org, stage=stages[0], owner_id=users["sales"].id)
    with pytest.raises(PermissionDenied):
        BoardService(sales.actor).move(theirs.id, stage_id=stages[1].id)
    assert BoardService(sales.actor).move(mine.id, stage_id=stages[1].id).deal.stage_id == stages[1].id


def test_move_query_budget(service, org, stages, count_queries):
    a = factories.make_deal(org, stage=stages[1], position=1.0)
    b = factories.make_deal(org, stage=stages[1], position=2.0)
    moving = factories.make_deal(org, stage=stages[0])
    org_rates(org.id)  # warm, as the board that offers the move left them
    with count_queries() as q:
        BoardService(service.actor).move(
            moving.id, stage_id=stages[1].id, before_id=a.id, after_id=b.id, version=moving.version
        )
    assert q.count <= 5, q  # deal + neighbours, pipelines (cold cache), UPDATE, history INSERT, headers


# --- the board -----------------------------------------------------------------------------


def test_board_columns_cards_and_headers(service, org, stages, users):
    tag = factories.make_tag(org, name="hot")
    company = factories.make_company(org, name="Initech")
    deal = factories.make_deal(
        org,
        stage=stages[1],
        value=Decimal("1000"),
        company_id=company.id,
        owner_id=users["sales"].id,
        expected_close_date=date.today() - timedelta(days=3),
        tags=[tag],
    )
    factories.make_deal(org, stage=stages[1], value=Decimal("3000"))
    factories.make_deal(org, stage=stages[3], value=Decimal("200"), status="won", closed_at=utcnow())
    factories.make_deal(org, stage=stages[4], value=Decimal("999"), status="lost", closed_at=utcnow())
    trashed = factories.make_deal(org, stage=stages[1], value=Decimal("5"))
    service.delete(trashed.id)
    board = BoardService(service.actor).board()
    assert board.pipeline.id == stages[0].pipeline_id
    assert [c.stage.name for c in board.columns] == ["Lead in", "Proposal", "Negotiation", "Won", "Lost"]
    proposal = board.columns[1]
    assert proposal.stats.count == 2 and proposal.stats.total == 4000 and proposal.stats.weighted == 2000
    assert board.columns[3].stats.weighted == 200 and board.columns[4].stats.weighted == 0
    card = next(c for c in proposal.cards if c.id == deal.id)
    assert card.company.name == "Initech" and card.owner.id == users["sales"].id and card.tags[0].name == "hot"
    # The headline is the open pipeline; the closed columns count this month's (issue 18).
    assert board.totals.count == 2 and board.totals.weighted == 2000


def test_board_first_page_per_column_and_load_more(service, org, stages):
    for i in range(7):
        factories.make_deal(org, stage=stages[0], position=float(i), name=f"A{i}")
    for i in range(3):
        factories.make_deal(org, stage=stages[1], position=float(i), name=f"B{i}")
    board = BoardService(service.actor).board(per_column=5)
    first = board.columns[0]
    assert [d.name for d in first.cards] == ["A0", "A1", "A2", "A3", "A4"]
    assert first.has_more and first.stats.count == 7
    assert not board.columns[1].has_more and len(board.columns[1].cards) == 3
    page = BoardService(service.actor).column(stages[0].id, offset=5, limit=5)
    assert [d.name for d in page.cards] == ["A5", "A6"] and page.next_offset is None
    page = BoardService(service.actor).column(stages[0].id, offset=0, limit=3)
    assert page.next_offset == 3


def test_board_unknown_or_foreign_pipeline(service, other_org):
    foreign = factories.make_pipeline(other_org)
    with pytest.raises(NotFound):
        BoardService(service.actor).board(pipeline_id=foreign.id)
    with pytest.raises(NotFound):
        BoardService(service.actor).column(factories.stages_of(foreign)[0].id)


def test_board_without_pipelines(service):
    board = BoardService(service.actor).board()
    assert board.pipeline is None and board.columns == []


@pytest.mark.parametrize("deals_per_stage", [1, 100])
def test_board_statement_count_is_constant(service, org, count_queries, deals_per_stage):
    pipeline = factories.make_pipeline(org, stages=[(f"S{i}", 10 * i, None) for i in range(10)])
    tag = factories.make_tag(org)
    company = factories.make_company(org)
    rows = []
    for stage in factories.stages_of(pipeline):
        for i in range(deals_per_stage):
            rows.append(
                Deal(
                    org_id=org.id,
                    pipeline_id=pipeline.id,
                    stage_id=stage.id,
                    name=f"D{i}",
                    value=Decimal(10),
                    position=float(i),
                    company_id=company.id,
                    tags=[tag],
                )
            )
    service.session.add_all(rows)
    service.session.commit()
    service.pipelines.pipeline_list()  # warm: the cold cache costs one more statement
    org_rates(org.id)  # the exchange rates too
    with count_queries() as q:
        board = BoardService(service.actor).board()
    assert q.count == 3, q  # headers aggregate, windowed cards, tags
    assert sum(c.stats.count for c in board.columns) == 10 * deals_per_stage
    assert all(len(c.cards) == min(deals_per_stage, BOARD_PAGE_SIZE) for c in board.columns)


# --- list, create, update, close -----------------------------------------------------------


def test_list_search_and_scope(service, org, stages, users):
    factories.make_deal(org, stage=stages[0], name="Big 50% deal", owner_id=users["manager"].id)
    factories.make_deal(org, stage=stages[0], name="Small", owner_id=users["sales"].id)
    assert [d.name for d in service.list_page(q="50%").items] == ["Big 50% deal"]
    assert [d.name for d in service.list_page(q="deal  big").items] == ["Big 50% deal"]  # words, any order
    assert [d.name for d in service.list_page(scope="mine").items] == ["Big 50% deal"]
    assert service.list_page(sort="name").items[0].name == "Big 50% deal"
    with pytest.raises(BadRequest):
        service.list_page(sort="nope")


def test_create_uses_stage_rule_and_validates(service, org, stages, other_org):
    deal = service.create(name="New", value=Decimal("10"), stage_id=stages[3].id)
    assert deal.status == "won" and deal.closed_at is not None and deal.pipeline_id == stages[3].pipeline_id
    with pytest.raises(ValidationError) as error:
        service.create(name=" ", stage_id=stages[0].id)
    assert "name" in error.value.field_errors
    foreign_company = factories.make_company(other_org)
    with pytest.raises(ValidationError) as error:
        service.create(name="X", stage_id=stages[0].id, company_id=foreign_company.id)
    assert "company_id" in error.value.field_errors
    with pytest.raises(ValidationError) as error:
        service.create(name="X", stage_id=stages[0].id, value=Decimal("-1"))
    assert "value" in error.value.field_errors


def test_update_stage_change_goes_through_the_rule(service, org, stages):
    deal = factories.make_deal(org, stage=stages[0])
    service.update(deal.id, name="Renamed", stage_id=stages[4].id, lost_reason="No budget")
    deal = fresh(service, deal.id)
    assert deal.name == "Renamed" and deal.status == "lost" and deal.lost_reason == "No budget"


def test_mark_won_lost_and_reopen(service, org, stages):
    deal = factories.make_deal(org, stage=stages[1])
    service.mark_won(deal.id)
    deal = fresh(service, deal.id)
    assert deal.status == "won" and deal.stage_id == stages[3].id
    service.mark_lost(deal.id, lost_reason="Went dark")
    deal = fresh(service, deal.id)
    assert deal.status == "lost" and deal.stage_id == stages[4].id and deal.lost_reason == "Went dark"
    service.reopen(deal.id)
    deal = fresh(service, deal.id)
    assert deal.status == "open" and deal.stage_id == stages[2].id and deal.closed_at is None


def test_mark_won_without_won_stage(service, org):
    pipeline = factories.make_pipeline(org, stages=[("Only", 20, None)])
    deal = factories.make_deal(org, pipeline=pipeline)
    service.mark_won(deal.id)
    assert fresh(service, deal.id).status == "won"
    service.reopen(deal.id)
    assert fresh(service, deal.id).status == "open"


def test_soft_delete_and_restore(service, org, stages):
    deal = factories.make_deal(org, stage=stages[0])
    service.delete(deal.id)
    assert BoardService(service.actor).board().columns[0].stats.count == 0
    service.restore(deal.id)
    assert BoardService(service.actor).board().columns[0].stats.count == 1


def test_export_rows(service, org, stages):
    factories.make_deal(org, stage=stages[0], name="Exported")
    rows = [DEAL.csv_header(), *(DEAL.csv_values(row) for row in service.export_rows())]
    assert rows[0][0] == "Name" and rows[1][0] == "Exported" and rows[1][5] == "Lead in"

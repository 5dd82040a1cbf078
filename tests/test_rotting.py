"""Deal rotting: the time a deal entered its stage survives (or is renewed by) every way a stage changes;
days in stage and "rotting" as filter fields match rows computed by hand; the dashboard's rotting panel;
the stage setting, the board card and the list column."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from crm_web.entities import DEAL
from crm_web.extensions import db
from crm_web.filters import parse_filter
from crm_web.imports.service import ImportService, Options
from crm_web.models import Deal, Lead, PipelineStage
from crm_web.services.board import BoardService
from crm_web.services.currencies import ExchangeRateService
from crm_web.services.deals import DealService
from crm_web.services.leads import LeadService
from crm_web.services.pipeline_catalog import PipelineCatalog
from crm_web.services.pipelines import PipelineService
from crm_web.services.rotting import days_in_stage
from crm_web.services.stats.dashboard import DashboardService
from crm_web.services.trash import TrashRef, TrashService
from tests import factories
from tests.conftest import HX

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=30)


@pytest.fixture
def frozen(app, monkeypatch):
    monkeypatch.setitem(app.config, "CLOCK", lambda: NOW)
    return NOW


@pytest.fixture
def manager(users):
    return factories.actor_for(users["manager"])


@pytest.fixture
def pipeline(org):
    return factories.make_pipeline(org)


@pytest.fixture
def stages(pipeline):
    return factories.stages_of(pipeline)  # Lead in, Proposal, Negotiation, Won, Lost


def aged(deal_id, when=OLD):
    db.session.execute(update(Deal).where(Deal.id == deal_id).values(stage_changed_at=when))
    db.session.commit()


def entered(deal_id):
    return db.session.scalar(
        select(Deal.stage_changed_at).where(Deal.id == deal_id).execution_options(include_deleted=True)
    )


def old_deal(org, stage, **values):
    deal = factories.make_deal(org, stage=stage, **values)
    aged(deal.id)
    return deal


# --- every path that changes (or keeps) the stage ------------------------------------------


def test_board_move_renews_the_time_only_when_the_stage_changes(org, stages, manager):
    deal = old_deal(org, stages[0])
    BoardService(manager).move(deal.id, stage_id=stages[0].id)  # reordered in its column
    assert entered(deal.id) == OLD
    BoardService(manager).move(deal.id, stage_id=stages[1].id)
    assert entered(deal.id) > OLD


def test_the_form_renews_it_on_a_stage_change_and_keeps_it_otherwise(org, stages, manager):
    service = DealService(manager)
    deal = old_deal(org, stages[0])
    service.update(deal.id, stage_id=stages[0].id, name="Renamed")
    assert entered(deal.id) == OLD
    service.update(deal.id, stage_id=stages[2].id)
    assert entered(deal.id) > OLD


def test_won_lost_and_reopen_renew_it(org, stages, manager):
    service = DealService(manager)
    deal = old_deal(org, stages[1])
    service.mark_won(deal.id)
    assert entered(deal.id) > OLD
    aged(deal.id)
    service.reopen(deal.id)
    assert entered(deal.id) > OLD


def test_new_deals_and_converted_leads_start_their_stage_now(org, stages, manager, users):
    deal = DealService(manager).create(stage_id=stages[0].id, name="New", value=Decimal("1"))
    assert entered(deal.id) is not None
    lead = factories.make_lead(org, first_name="Ada", last_name="L", owner_id=users["sales"].id)
    result = LeadService(factories.actor_for(users["sales"])).convert(lead.id, create_deal=True)
    assert result.deal is not None and entered(result.deal.id) is not None
    assert db.session.get(Lead, lead.id) is not None


def test_deleting_a_stage_moves_its_deals_and_renews_their_time(org, stages, manager):
    moved = old_deal(org, stages[1])
    already_there = old_deal(org, stages[0])
    PipelineService(manager).stage_delete(stages[1].id, move_to_stage_id=stages[0].id)
    assert entered(moved.id) > OLD
    assert entered(already_there.id) == OLD


def test_deleting_a_pipeline_moves_its_deals_and_renews_their_time(org, stages, manager):
    other = factories.make_pipeline(org, name="Renewals", is_default=False)
    moved = old_deal(org, factories.stages_of(other)[0])
    PipelineService(manager).pipeline_delete(other.id, move_to_stage_id=stages[0].id)
    assert entered(moved.id) > OLD
    assert db.session.scalar(select(Deal.stage_id).where(Deal.id == moved.id)) == stages[0].id


def test_restore_keeps_the_time_unless_the_deal_is_rehomed(org, stages, manager, users):
    other = factories.make_pipeline(org, name="Renewals", is_default=False)
    doomed = factories.stages_of(other)[1]
    orphan = old_deal(org, doomed)
    kept = old_deal(org, stages[1])
    DealService(manager).delete_many([orphan.id, kept.id])
    db.session.delete(db.session.get(PipelineStage, doomed.id))
    db.session.commit()
    TrashService(factories.actor_for(users["admin"])).restore([TrashRef("deal", orphan.id), TrashRef("deal", kept.id)])
    assert entered(kept.id) == OLD
    assert entered(orphan.id) > OLD


def test_undo_of_a_bulk_delete_keeps_the_time(org, stages, manager):
    deal = old_deal(org, stages[1])
    service = DealService(manager)
    service.delete_many([deal.id])
    service.restore_many([deal.id])
    assert entered(deal.id) == OLD


def test_csv_import_stamps_new_deals_and_an_update_keeps_the_stage_time(org, pipeline, actor, tmp_path):
    source = Path(__file__).parent / "data" / "import" / "deals.csv"
    target = tmp_path / "deals.csv"
    shutil.copy(source, target)
    importer = ImportService(actor)
    job = importer.create_import(str(target), "deals", file_name="deals.csv", options=Options())
    importer.run(job.id)
    created = db.session.execute(select(Deal.id, Deal.stage_changed_at).where(Deal.org_id == org.id)).all()
    assert created and all(when is not None for _, when in created)


def test_migration_backfills_the_stage_time_from_the_last_move_else_the_creation(engine_name, tmp_path):
    """0023_rotting on a database at 0018 holding deals without a stage time (a fresh database per engine)."""
    from contextlib import nullcontext

    from flask_migrate import upgrade
    from sqlalchemy import text

    from crm_web import create_app
    from tests.conftest import MIGRATIONS, base_config, postgres_database

    place = nullcontext(f"sqlite:///{tmp_path / 'm.sqlite3'}") if engine_name == "sqlite" else postgres_database()
    with place as url:
        fresh = create_app(base_config(url))
        with fresh.app_context():
            engine = db.engine
            upgrade(directory=MIGRATIONS, revision="0018_currencies")
            key = (lambda u: u.hex) if engine_name == "sqlite" else str
            org, pipe, stage, never_moved, moved = (uuid.uuid4() for _ in range(5))
            created, moved_at = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
            ids = {"o": key(org), "p": key(pipe), "s": key(stage), "t": created}
            with engine.begin() as c:
                c.execute(
                    text(
                        "INSERT INTO organizations (id, name, slug, created_at, updated_at)"
                        " VALUES (:o, 'A', 'a', :t, :t)"
                    ),
                    ids,
                )
                c.execute(
                    text(
                        "INSERT INTO pipelines (id, org_id, name, is_default, position, currency, created_at,"
                        " updated_at) VALUES (:p, :o, 'P', true, 0, 'USD', :t, :t)"
                    ),
                    ids,
                )
                c.execute(
                    text(
                        "INSERT INTO pipeline_stages (id, org_id, pipeline_id, name, position, probability, is_won,"
                        " is_lost, created_at, updated_at) VALUES (:s, :o, :p, 'S', 0, 10, false, false, :t, :t)"
                    ),
                    ids,
                )
                for deal in (never_moved, moved):
                    c.execute(
                        text(
                            "INSERT INTO deals (id, org_id, name, value, currency, status, position, pipeline_id,"
                            " stage_id, created_at, updated_at, version)"
                            " VALUES (:d, :o, 'D', 5, 'USD', 'open', 0, :p, :s, :t, :t, 1)"
                        ),
                        {**ids, "d": key(deal)},
                    )
                c.execute(
                    text(
                        "INSERT INTO record_history (id, org_id, entity_type, entity_id, entity_label, action, changes,"
                        " created_at) VALUES (:h, :o, 'deal', :d, 'D', 'moved', '{}', :m)"
                    ),
                    {**ids, "h": key(uuid.uuid4()), "d": key(moved), "m": moved_at},
                )
            upgrade(directory=MIGRATIONS)
            table = Deal.__table__
            with engine.connect() as c:  # Core on the table: no session scoping outside a request
                times = {i: when for i, when in c.execute(select(table.c.id, table.c.stage_changed_at))}
            engine.dispose()
    assert times == {never_moved: created, moved: moved_at}


# --- days in stage and rotting: Python, SQL filter and dashboard agree -----------------------


@pytest.fixture
def rotting_world(org, stages, users, frozen):
    """Proposal rots after 5 days; deals 0..9 days in it, one won, one in a never-rotting stage."""
    stage = db.session.get(PipelineStage, stages[1].id)
    stage.rotting_days = 5
    db.session.commit()
    deals = {}
    for days in (0, 3, 5, 6, 9):
        deal = factories.make_deal(org, stage=stages[1], name=f"P{days}", value=Decimal("100"))
        aged(deal.id, NOW - timedelta(days=days, hours=1))
        deals[f"P{days}"] = deal
    won = factories.make_deal(org, stage=stages[3], name="Won", status="won")
    aged(won.id, NOW - timedelta(days=40))
    never = factories.make_deal(org, stage=stages[0], name="Lead40")
    aged(never.id, NOW - timedelta(days=40))
    return deals


def names_for(manager, *conditions):
    spec = parse_filter(MultiDict([("f", c) for c in conditions]), DEAL.filter_fields())
    page = DealService(manager).list_page(filter_spec=spec, per_page=100)
    return sorted(row.deal.name if hasattr(row, "deal") else row.name for row in page.items)


def by_hand(manager, rule):
    catalog = {s.id: s for p in PipelineCatalog(manager).pipeline_list() for s in p.stages}
    rows = db.session.scalars(select(Deal).where(Deal.org_id == manager.org_id)).all()
    return sorted(d.name for d in rows if rule(d, catalog.get(d.stage_id), days_in_stage(d.stage_changed_at, NOW)))


def test_rotting_filter_matches_rows_computed_by_hand(rotting_world, manager):
    def rots(deal, stage, days):
        return deal.status == "open" and stage is not None and stage.rots(days)

    expected = by_hand(manager, rots)
    assert expected == ["P6", "P9"]
    assert names_for(manager, "rotting.isTrue") == expected
    assert names_for(manager, "rotting.isFalse") == by_hand(manager, lambda d, s, n: not rots(d, s, n))


@pytest.mark.parametrize(
    ("condition", "rule"),
    [
        ("daysInStage.greaterThan.5", lambda n: n > 5),
        ("daysInStage.lessOrEqual.3", lambda n: n <= 3),
        ("daysInStage.equals.5", lambda n: n == 5),
        ("daysInStage.between.3,6", lambda n: 3 <= n <= 6),
    ],
)
def test_days_in_stage_filter_matches_rows_computed_by_hand(rotting_world, manager, condition, rule):
    expected = by_hand(manager, lambda d, s, n: n is not None and rule(n))
    assert expected
    assert names_for(manager, condition) == expected


def test_dashboard_counts_rotting_deals_per_stage_in_the_org_currency(rotting_world, org, stages, users):
    ExchangeRateService(factories.actor_for(users["admin"])).set_rate("EUR", "2")
    eur = factories.make_deal(org, stage=stages[1], name="Euro", value=Decimal("10"), currency="EUR")
    aged(eur.id, NOW - timedelta(days=7))
    yen = factories.make_deal(org, stage=stages[1], name="Yen", value=Decimal("10"), currency="JPY")
    aged(yen.id, NOW - timedelta(days=7))
    service = DashboardService(factories.actor_for(users["manager"]))
    rows = service.rotting(service.resolve_scope("all"))
    assert [(r.stage, r.count, r.value, r.unconverted) for r in rows] == [("Proposal", 4, Decimal("220.00"), 1)]
    mine = service.rotting(service.resolve_scope("me"))
    assert mine[0].count == 0


# --- pages -------------------------------------------------------------------------------------


def test_managers_set_a_stages_rotting_limit_and_sales_cannot(client, login, stages):
    login("sales")
    assert client.get(f"/pipelines/stages/{stages[1].id}/edit").status_code == 403
    login("manager")
    form = {"name": "Proposal", "probability": "50", "rotting_days": "7"}
    assert client.post(f"/pipelines/stages/{stages[1].id}/edit", data=form).status_code == 303
    assert db.session.scalar(select(PipelineStage.rotting_days).where(PipelineStage.id == stages[1].id)) == 7
    assert b"rots after 7 days" in client.get("/pipelines").data
    bad = client.post(f"/pipelines/stages/{stages[1].id}/edit", data={**form, "rotting_days": "-2"})
    assert bad.status_code == 422
    form["rotting_days"] = ""
    assert client.post(f"/pipelines/stages/{stages[1].id}/edit", data=form).status_code == 303
    assert db.session.scalar(select(PipelineStage.rotting_days).where(PipelineStage.id == stages[1].id)) is None


def test_cards_and_rows_show_days_in_stage_and_rotting(client, login, rotting_world, pipeline):
    login("manager")
    board = client.get(f"/deals/board?pipeline={pipeline.id}").get_data(as_text=True)
    card = board.split(f'id="deal-card-{rotting_world["P9"].id}"')[1].split("</article>")[0]
    assert 'data-days-in-stage="9"' in card and "Rotting · 9 d in stage" in card
    fresh = board.split(f'id="deal-card-{rotting_world["P3"].id}"')[1].split("</article>")[0]
    assert 'data-days-in-stage="3"' in fresh and "Rotting" not in fresh
    listing = client.get("/deals?f=rotting.isTrue", headers=HX).get_data(as_text=True)
    assert "Days in stage" in listing and listing.count("data-rotting>") == 2
    assert client.get("/dashboard/rotting", headers=HX).status_code == 200


def test_a_moved_card_comes_back_with_its_new_days_in_stage(client, login, rotting_world, stages):
    """A drag answers with the moved card out of band: 0 days in its new stage, no longer rotting."""
    login("manager")
    deal = rotting_world["P9"]
    response = client.post(
        f"/deals/{deal.id}/move?pipeline={stages[0].pipeline_id}",
        data={"stage_id": str(stages[2].id), "version": str(deal.version)},
        headers=HX,
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    card = html.split(f'id="deal-card-{deal.id}" hx-swap-oob="true"')[1].split("</article>")[0]
    assert 'data-days-in-stage="0"' in card and "Rotting" not in card
    assert f'<article class="deal-card" id="deal-card-{deal.id}"' in html  # the rotting class is gone
    assert f"?pipeline={stages[0].pipeline_id}" in card  # its Delete keeps the board's state
    # Moving a fresh deal into the rotting stage: 0 days there, not rotting either.
    fresh = rotting_world["P0"]
    back = client.post(f"/deals/{fresh.id}/move", data={"stage_id": str(stages[0].id)}, headers=HX)
    assert 'data-days-in-stage="0"' in back.get_data(as_text=True)

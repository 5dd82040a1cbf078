"""Real Chromium: an admin restores a deleted deal from the trash page."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm_web.extensions import db
from crm_web.models import Deal, Organization, User
from crm_web.services.base import Actor, BaseService

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Deals(BaseService[Deal]):
    model = Deal
    entity_type = "deal"


def test_admin_restores_a_deleted_deal_from_the_trash(page, page_errors, live_server, live_db, browser_login):
    with live_db.app_context():
        org = db.session.scalar(select(Organization).where(Organization.slug == "demo"))
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        deal = db.session.scalars(select(Deal).where(Deal.org_id == org.id).order_by(Deal.name)).first()
        deal_id, name, pipeline_id, stage_id = deal.id, deal.name, deal.pipeline_id, deal.stage_id
        Deals(Actor.of(admin)).delete(deal_id)
        db.session.remove()

    browser_login(page, "admin")
    page.goto(f"{live_server}/trash?type=deal")
    row = page.locator(f"#trash-deal-{deal_id}")
    expect(row).to_contain_text(name)

    row.locator("details summary").click()  # history loads lazily into the row
    expect(row.locator(".trash-history-body")).to_contain_text("Ada Admin moved this to the trash")

    row.get_by_role("button", name="Restore").click()
    page.locator(".toast", has_text=f"Restored {name}").wait_for()
    row.wait_for(state="detached")  # the table refreshed itself on `trash-changed`

    with live_db.app_context():
        assert (
            db.session.scalar(select(Deal.deleted_at).where(Deal.id == deal_id).execution_options(include_deleted=True))
            is None
        )
        assert db.session.scalar(select(Deal.id).where(Deal.id == deal_id)) == deal_id
        db.session.remove()

    # And it is back on the board, in its stage's column.
    page.goto(f"{live_server}/deals/board?pipeline={pipeline_id}")
    expect(page.locator(f'[data-stage-id="{stage_id}"] [data-deal-id="{deal_id}"]')).to_contain_text(name)
    assert page_errors == []


def test_admin_purges_selected_records_after_a_confirmation(page, live_server, live_db, browser_login):
    with live_db.app_context():
        admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
        deals = db.session.scalars(
            select(Deal).where(Deal.org_id == admin.org_id).order_by(Deal.name.desc()).limit(2)
        ).all()
        ids = [d.id for d in deals]
        names = [d.name for d in deals]
        Deals(Actor.of(admin)).delete_many(ids)
        db.session.remove()

    browser_login(page, "admin")
    page.goto(f"{live_server}/trash?type=deal")
    for deal_id in ids:
        page.locator(f"#trash-deal-{deal_id} input[name=item]").check()
    page.get_by_role("button", name="Delete permanently…").click()
    confirm = page.locator("#trash-confirm.confirm-box")
    for n in names:
        expect(confirm).to_contain_text(n)
    confirm.get_by_role("button", name="Delete 2 permanently").click()
    page.locator(".toast", has_text="Permanently deleted 2 records.").wait_for()
    page.locator(f"#trash-deal-{ids[0]}").wait_for(state="detached")
    expect(page.locator("#trash-confirm")).to_be_empty()

    with live_db.app_context():
        assert (
            db.session.scalars(select(Deal.id).where(Deal.id.in_(ids)).execution_options(include_deleted=True)).all()
            == []
        )
        db.session.remove()

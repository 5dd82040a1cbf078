"""Activities: quick views, joined lists and timelines, writes, stats (hand-computed) and their cache."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from crm_web.errors import BadRequest, NotFound, PermissionDenied, ValidationError
from crm_web.extensions import cache
from crm_web.models import Activity
from crm_web.services.activities import ActivityService, Links
from crm_web.services.stats.activities import activity_stats as get_stats
from tests import factories
from tests.stats_oracles import activity_type_stats as get_type_stats

# A Wednesday: the week runs Mon 23 Nov 00:00 -> Mon 30 Nov 00:00 (UTC).
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def fixture_set(org, other_org, users):
    """Ten activities with known stats (see the expectations in each test)."""
    sales, manager = users["sales"], users["manager"]
    contact = factories.make_contact(org)

    def make(**values):
        values.setdefault("owner_id", sales.id)
        return factories.make_activity(org, **values)

    rows = {
        "overdue_task": make(
            type="task", status="pending", priority="high", due_at=NOW - timedelta(days=2), contact_id=contact.id
        ),
        "overdue_today_call": make(
            type="call", status="in_progress", priority="urgent", due_at=NOW - timedelta(hours=1)
        ),
        "today_email": make(
            type="email", status="pending", priority="low", due_at=NOW + timedelta(hours=3), contact_id=contact.id
        ),
        "week_meeting": make(type="meeting", status="pending", due_at=NOW + timedelta(days=3)),
        "done_note": make(
            type="note", status="completed", due_at=NOW - timedelta(days=1), completed_at=NOW - timedelta(days=1)
        ),
        "cancelled_task": make(type="task", status="cancelled", due_at=NOW - timedelta(days=10)),
        "undated_task": make(type="task", status="pending", due_at=None),
        "manager_call": make(type="call", status="pending", due_at=NOW + timedelta(days=10), owner_id=manager.id),
        "done_last_week": make(
            type="task", status="completed", due_at=NOW - timedelta(days=8), completed_at=NOW - timedelta(days=7)
        ),
        "deleted": make(type="task", status="pending", due_at=NOW - timedelta(days=1), deleted_at=NOW),
    }
    factories.make_activity(other_org, status="pending", due_at=NOW - timedelta(days=1))
    return {"contact": contact, **rows}


def service_for(user) -> ActivityService:
    return ActivityService(factories.actor_for(user))


# --- stats ---------------------------------------------------------------------------------


def test_get_stats_matches_hand_computed_numbers(fixture_set, actor, count_queries):
    with count_queries() as queries:
        stats = get_stats(actor, now=NOW)
    assert queries.count == 2, queries  # the tallies, then the clock-bound counts
    assert stats == {
        "total": 9,
        "open": 6,
        "overdue": 2,
        "due_today": 2,
        "due_this_week": 4,
        "completed_this_week": 1,
        "by_status": {"pending": 5, "in_progress": 1, "completed": 2, "cancelled": 1},
        "by_type": {"task": 4, "note": 1, "call": 2, "email": 1, "meeting": 1},
    }


def test_get_stats_per_user(fixture_set, actor, users):
    stats = get_stats(actor, user_id=users["manager"].id, now=NOW)
    assert stats["total"] == 1 and stats["open"] == 1 and stats["overdue"] == 0 and stats["due_this_week"] == 0
    assert stats["by_type"]["call"] == 1 and stats["by_status"]["pending"] == 1
    assert get_stats(actor, user_id=users["sales"].id, now=NOW)["total"] == 8


def test_get_type_stats_is_one_aggregate(fixture_set, actor, count_queries):
    with count_queries() as queries:
        stats = get_type_stats(actor, now=NOW)
    assert queries.count == 1, queries
    assert stats == {
        "total": 9,
        "overdue": 2,
        "by_status": {"pending": 5, "in_progress": 1, "completed": 2, "cancelled": 1},
        "by_priority": {"low": 1, "medium": 6, "high": 1, "urgent": 1},
    }


def test_stats_are_cached_per_org_and_user(fixture_set, actor, users, count_queries):
    get_stats(actor, now=NOW)
    with count_queries() as queries:
        assert get_stats(actor, now=NOW)["total"] == 9
    assert queries.count == 0, queries
    with count_queries() as queries:
        get_stats(actor, user_id=users["sales"].id, now=NOW)
    assert queries.count == 2, "another user's numbers are a separate entry"


@pytest.mark.parametrize("change", ["create", "complete", "delete", "restore", "update", "delete_many"])
def test_any_activity_change_invalidates_the_org_stats(fixture_set, actor, count_queries, change):
    service = ActivityService(actor)
    target = fixture_set["week_meeting"]
    if change == "restore":
        service.delete(target.id)
    before = get_stats(actor, now=NOW)
    {
        "create": lambda: service.create(subject="New", type="task", status="pending"),
        "complete": lambda: service.set_completed(target.id, completed=True),
        "delete": lambda: service.delete(target.id),
        "restore": lambda: service.restore(target.id),
        "update": lambda: service.update(target.id, type="call"),
        "delete_many": lambda: service.delete_many([target.id]),
    }[change]()
    with count_queries() as queries:
        after = get_stats(actor, now=NOW)
    assert queries.count == 2, "the cached entry is stale after a change"
    assert after != before


def test_another_orgs_change_keeps_the_cache(fixture_set, actor, other_org, count_queries):
    get_stats(actor, now=NOW)
    other_admin = factories.make_user(other_org, role="admin")
    service_for(other_admin).create(subject="Elsewhere", type="task", status="pending")
    with count_queries() as queries:
        get_stats(actor, now=NOW)
    assert queries.count == 0


def test_stats_survive_a_cache_outage(fixture_set, actor, monkeypatch):
    def down(*args, **kwargs):
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    assert get_stats(actor, now=NOW)["total"] == 9
    ActivityService(actor).create(subject="While Redis is down", type="task", status="pending")


def test_stats_with_redis(app, fixture_set, actor, redis_url, count_queries):
    """The same cache behaviour against a real Redis (Flask-Caching RedisCache)."""
    from flask_caching import Cache

    from crm_web.services import cache as cache_helper

    redis_cache = Cache()
    redis_cache.init_app(
        app,
        config={
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": f"crm-test-{uuid.uuid4().hex}:",
        },
    )
    original = cache_helper.cache
    cache_helper.cache = redis_cache
    try:
        get_stats(actor, now=NOW)
        with count_queries() as queries:
            assert get_stats(actor, now=NOW)["total"] == 9
        assert queries.count == 0
        ActivityService(actor).set_completed(fixture_set["week_meeting"].id, completed=True)
        assert get_stats(actor, now=NOW)["by_status"]["completed"] == 3
    finally:
        redis_cache.clear()
        cache_helper.cache = original


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "view,expected",
    [
        ("mine", {"overdue_task", "overdue_today_call", "today_email", "week_meeting", "undated_task"}),
        ("overdue", {"overdue_task", "overdue_today_call"}),
        ("today", {"overdue_today_call", "today_email"}),
        ("upcoming", {"today_email", "week_meeting"}),
        (
            "all",
            {
                "overdue_task",
                "overdue_today_call",
                "today_email",
                "week_meeting",
                "done_note",
                "cancelled_task",
                "undated_task",
                "manager_call",
                "done_last_week",
            },
        ),
    ],
)
def test_quick_views(fixture_set, users, view, expected):
    page = service_for(users["sales"]).list_page(view=view, now=NOW, per_page=100)
    names = {name for name, a in fixture_set.items() if isinstance(a, Activity) and a.id in {i.id for i in page.items}}
    assert names == expected and page.total == len(expected)


def test_unknown_view_is_bad_request(actor):
    with pytest.raises(BadRequest):
        ActivityService(actor).list_page(view="nope")


def test_list_search_scope_and_filter(fixture_set, users):
    from crm_web.entities import ACTIVITY
    from crm_web.filters import parse_filter

    service = service_for(users["manager"])
    assert service.list_page(q="zzz-none").total == 0
    assert {a.id for a in service.list_page(scope="mine").items} == {fixture_set["manager_call"].id}
    spec = parse_filter({"f": "type.equals.call"}, ACTIVITY.filters)
    assert service.list_page(filter_spec=spec).total == 2


def test_list_search_matches_words_and_takes_wildcards_literally(org, users):
    for subject in ("Call: renewal at 100% discount", "Renewal call", "Email: intro"):
        factories.make_activity(org, subject=subject, owner_id=users["manager"].id)
    service = service_for(users["manager"])

    def found(q):
        return sorted(a.subject for a in service.list_page(q=q).items)

    assert found("call renewal") == ["Call: renewal at 100% discount", "Renewal call"]  # any order
    assert found("100%") == ["Call: renewal at 100% discount"]
    assert found("10_") == []  # an underscore, not "any one character" (which would match "100")
    assert found("%al") == []  # a percent sign, not "anything" (which would match "Call", "Renewal")


def _make_many(org, owner, n, contact=None, company=None):
    for i in range(n):
        factories.make_activity(
            org,
            owner_id=owner.id,
            subject=f"Bulk {i}",
            contact_id=contact.id if contact else None,
            company_id=company.id if company else None,
        )


def test_list_loads_relations_in_the_same_query(org, users, count_queries):
    contact = factories.make_contact(org)
    company = factories.make_company(org)
    service = service_for(users["sales"])
    _make_many(org, users["sales"], 1, contact, company)
    with count_queries() as one:
        page = service.list_page(view="all")
        [(a.contact.full_name, a.company.name, a.deal, a.lead, a.owner.name) for a in page.items]
    _make_many(org, users["sales"], 30, contact, company)
    with count_queries() as many:
        page = service.list_page(view="all", per_page=50)
        [(a.contact.full_name, a.company.name, a.deal, a.lead, a.owner.name) for a in page.items]
    assert len(page.items) == 31
    assert one.count == many.count == 2  # the count and one joined SELECT


@pytest.mark.parametrize("method", ["upcoming", "overdue"])
def test_upcoming_and_overdue_are_one_joined_query(fixture_set, users, count_queries, method):
    with count_queries() as queries:
        items = getattr(service_for(users["sales"]), method)(now=NOW)
        [(a.contact, a.company, a.deal, a.lead, a.owner) for a in items]
    assert queries.count == 1
    assert len(items) == 2


def test_timeline_is_one_joined_query_for_that_record(fixture_set, users, count_queries):
    contact = fixture_set["contact"]
    with count_queries() as queries:
        items = service_for(users["sales"]).timeline(links=Links(contact=contact.id))
        [(a.contact.full_name, a.company, a.deal, a.lead, a.owner) for a in items]
    assert queries.count == 1
    assert [a.id for a in items] == [fixture_set["today_email"].id, fixture_set["overdue_task"].id]
    with pytest.raises(BadRequest):
        service_for(users["sales"]).timeline(links=Links())


# --- writing -------------------------------------------------------------------------------


def test_create_sets_owner_and_completed_at(org, users):
    activity = service_for(users["sales"]).create(subject="  Call back ", type="call", status="completed")
    assert activity.owner_id == users["sales"].id and activity.subject == "Call back"
    assert activity.completed_at is not None


def test_complete_and_reopen(fixture_set, users):
    service = service_for(users["sales"])
    activity = service.set_completed(fixture_set["week_meeting"].id, completed=True)
    assert activity.status == "completed" and activity.completed_at is not None
    activity = service.set_completed(activity.id, completed=False)
    assert activity.status == "pending" and activity.completed_at is None


def test_links_must_belong_to_the_org(org, other_org, users):
    foreign = factories.make_contact(other_org)
    with pytest.raises(ValidationError) as error:
        service_for(users["sales"]).create(subject="x", contact_id=foreign.id)
    assert "contact_id" in error.value.field_errors
    foreign_user = factories.make_user(other_org)
    with pytest.raises(ValidationError) as error:
        service_for(users["sales"]).create(subject="x", owner_id=foreign_user.id)
    assert "owner_id" in error.value.field_errors


def test_bad_choices_are_validation_errors(users):
    with pytest.raises(ValidationError):
        service_for(users["sales"]).create(subject="x", type="telegram")


def test_sales_cannot_change_someone_elses_activity(fixture_set, users):
    with pytest.raises(PermissionDenied):
        service_for(users["sales"]).set_completed(fixture_set["manager_call"].id, completed=True)
    service_for(users["manager"]).set_completed(fixture_set["overdue_task"].id, completed=True)


def test_other_org_ids_are_not_found(fixture_set, other_org):
    outsider = factories.make_user(other_org, role="admin")
    service = service_for(outsider)
    for call in (
        lambda: service.get(fixture_set["week_meeting"].id),
        lambda: service.set_completed(fixture_set["week_meeting"].id, completed=True),
        lambda: service.delete(fixture_set["week_meeting"].id),
        lambda: service.link_labels(Links(contact=fixture_set["contact"].id)),
    ):
        with pytest.raises(NotFound):
            call()


def test_delete_is_soft_and_restorable(fixture_set, users):
    service = service_for(users["sales"])
    target = fixture_set["week_meeting"]
    service.delete(target.id)
    with pytest.raises(NotFound):
        service.get(target.id)
    assert service.restore(target.id).deleted_at is None

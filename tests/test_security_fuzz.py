"""Property-based fuzzing (hypothesis) of the main routes' query parameters and forms: whatever a
client sends, the answer is never a 500 (bad input is 400/404/422, or ignored).

Each test signs in as an admin of a World (tests/security_support.py) and sends a few hundred
generated requests, as a page and as an htmx fragment. A failure prints the smallest request that
broke; add it as a regression test in the area's own test file once fixed.
"""

from __future__ import annotations

import string
import uuid
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_web.column_limits import DATE_MAX, DATE_MIN, column_limits
from crm_web.entities import ACTIVITY, COMPANY, CONTACT, DEAL, LEAD
from crm_web.filters.types import OPERATORS_BY_TYPE, FieldType
from crm_web.models import Activity, Company, Contact, Deal, Lead
from crm_web.services.stats.dashboard import PANELS
from tests.conftest import HX
from tests.security_support import World, build_world, make_users

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FORM_FUZZ = settings(FUZZ, max_examples=400)

OPERATORS = sorted({op for ops in OPERATORS_BY_TYPE.values() for op in ops})
# Inputs that broke (or nearly broke) parsers before: signs, non-ASCII digits, NUL, huge numbers.
NASTY = [
    "",
    " ",
    "-1",
    "0",
    "--5",
    "+3",
    "²",
    "١٢",
    "1e309",
    "NaN",
    "inf",
    "99999999999999999999999",
    "\x00",
    "a\x00b",
    "%",
    "_",
    "\\",
    "'",
    '"',
    "<script>",
    "..",
    ".",
    ":",
    "1:",
    "::",
    "today",
    "-0",
    "2024-02-30",
    "2024-13-01",
    "0001-01-01",
    "9999-12-31",
    "1.5",
    "1,5",
    "true",
    "null",
    "[]",
    "a" * 500,
]


def _numeric_edges() -> list[str]:
    """Each numeric column's own limits (crm_web/column_limits.py), a hair inside and outside, plus the
    integer types' limits: what overflowed a column (and answered 500) before."""
    edges: set[str] = set()
    for model in (Activity, Company, Contact, Deal, Lead):
        for column in model.__table__.columns:
            limits = column_limits(column)
            if limits is None:
                continue
            unit = Decimal(1).scaleb(-limits.places)
            for value in (limits.high, limits.high + unit, limits.high + unit / 2, limits.low - unit, limits.low):
                edges.add(f"{value:f}")
    for bits in (16, 32, 64):
        edges.update({str(2 ** (bits - 1) - 1), str(2 ** (bits - 1)), str(-(2 ** (bits - 1)) - 1)})
    edges.update({"999999999999999999", "-999999999999999999", "1e12", "1E+12", "-1e400", "sNaN", "Infinity"})
    return sorted(edges)


NUMERIC_EDGES = _numeric_edges()
# Calendar edges: the first and last days Python knows, the last one a filter accepts, and date-times whose
# offset moves them out of range in UTC.
DATE_EDGES = [
    DATE_MIN.isoformat(),
    DATE_MAX.isoformat(),
    "9999-12-31",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:59:59+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-30T23:59:59Z",
    "9999-12-31T00:00:00+00:00",
    "0000-12-31",
    "10000-01-01",
    "2024-02-29T24:00:00",
]
TYPE_EDGES = NUMERIC_EDGES + DATE_EDGES


def junk(extra: list[str] | tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY + list(extra)),
        st.sampled_from(TYPE_EDGES),
        st.text(max_size=40),
        st.text(alphabet=string.digits + "-.:", max_size=12),
        st.uuids().map(str),
    )


def filter_value(fields: dict) -> st.SearchStrategy[str]:
    """`f` values: mostly well-formed field.op.value triples with junk parts, sometimes grouped."""
    names = [*sorted(fields), "owner", "nope", ""]
    triple = st.tuples(
        st.sampled_from(names) | junk(),
        st.sampled_from(OPERATORS) | junk(),
        junk(["last_7_days", "this_month", "1,2", "a,b", "2024-01-01,2024-02-01"]),
    )
    group = st.sampled_from(["", "", "1:", "2:", "0:", "x:", "²:", "99999999999:"])
    return st.tuples(group, triple).map(lambda gt: f"{gt[0]}{gt[1][0]}.{gt[1][1]}.{gt[1][2]}")


def list_params(fields: dict | None, extra: dict[str, st.SearchStrategy] | None = None):
    keys = {
        "page": junk(),
        "per_page": junk(["10", "25", "100", "101"]),
        "sort": junk(["name", "-name", "-value"]),
        "q": junk(),
        "scope": junk(["all", "mine"]),
        "match": junk(["all", "any"]),
        "g1": junk(["any", "all"]),
        "g2": junk(),
        **(extra or {}),
    }
    if fields is not None:
        keys["f"] = st.lists(filter_value(fields), max_size=4)
        keys["field"] = st.lists(st.sampled_from(sorted(fields)) | junk(), max_size=3)
        keys["op"] = st.lists(st.sampled_from(OPERATORS) | junk(), max_size=3)
        keys["value"] = st.lists(junk(), max_size=3)
        keys["group"] = st.lists(junk(["1", "2"]), max_size=3)
    return st.fixed_dictionaries({}, optional=keys)


def _query(params: dict) -> str:
    pairs = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return urlencode(pairs)


@pytest.fixture
def world(org):
    return build_world(org, make_users(org), "Fuzz")


@pytest.fixture
def admin_client(client, world):
    with client.session_transaction() as session:
        session["_user_id"] = world.users["admin"].get_id()
        session["_fresh"] = True
    return client


def check(response, what) -> None:
    response.get_data()
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:500])


# --- query strings ----------------------------------------------------------------------------


LIST_PAGES = [
    ("/contacts", CONTACT.filters, {}),
    ("/contacts/export.csv", CONTACT.filters, {}),
    ("/deals", DEAL.filters, {}),
    ("/deals/export.csv", DEAL.filters, {}),
    ("/activities", ACTIVITY.filters, {"view": junk(["mine", "overdue", "today", "upcoming", "completed", "all"])}),
    ("/trash", None, {"type": junk(["contact", "deal", "company", "lead", "activity"])}),
]


@pytest.mark.parametrize("path,fields,extra", LIST_PAGES, ids=[p[0] for p in LIST_PAGES])
@pytest.mark.slow
def test_list_parameters_never_500(path, fields, extra, app, admin_client):
    @FUZZ
    @given(params=list_params(fields, extra), htmx=st.booleans())
    def run(params, htmx):
        url = f"{path}?{_query(params)}"
        check(admin_client.get(url, headers=HX if htmx else {}), url)

    run()


EDGE_LISTS = [
    ("/contacts", CONTACT.filters),
    ("/contacts/export.csv", CONTACT.filters),
    ("/companies", COMPANY.filters),
    ("/leads", LEAD.filters),
    ("/deals", DEAL.filters),
    ("/deals/export.csv", DEAL.filters),
    ("/deals/board", DEAL.filters),
    ("/activities", ACTIVITY.filters),
]
EDGE_TYPES = (FieldType.NUMBER, FieldType.MONEY, FieldType.DATE, FieldType.DATETIME)


def edge_condition(fields: dict) -> st.SearchStrategy[str]:
    """One condition on a number or date field with a value (or a pair) at the edge of its type."""
    names = sorted(name for name, ff in fields.items() if ff.type in EDGE_TYPES)

    def build(name: str, data: st.DataObject) -> str:
        ff = fields[name]
        op = data.draw(st.sampled_from([o for o in OPERATORS_BY_TYPE[ff.type] if o not in ("isEmpty", "isNotEmpty")]))
        edges = NUMERIC_EDGES if ff.type in (FieldType.NUMBER, FieldType.MONEY) else DATE_EDGES
        value = data.draw(st.sampled_from(edges))
        if op == "between":
            value = f"{data.draw(st.sampled_from(edges))},{value}"
        elif op == "inRange":
            value = "today"
        return f"{name}.{op}.{value}"

    return st.tuples(st.sampled_from(names), st.data()).map(lambda pair: build(*pair))


@pytest.mark.parametrize("path,fields", EDGE_LISTS, ids=[p[0] for p in EDGE_LISTS])
@pytest.mark.slow
def test_filters_at_the_types_edges_never_500(path, fields, app, admin_client):
    """Numbers and dates at (and just past) what their columns and the calendar hold: a result or a
    400/422 naming the condition, never an overflow."""

    @settings(FUZZ, max_examples=60)
    @given(conditions=st.lists(edge_condition(fields), min_size=1, max_size=2), htmx=st.booleans())
    def run(conditions, htmx):
        url = f"{path}?{_query({'f': conditions})}"
        response = admin_client.get(url, headers=HX if htmx else {})
        check(response, url)
        assert response.status_code in (200, 400, 422), (url, response.status_code)

    run()


@pytest.mark.slow
def test_board_parameters_never_500(app, admin_client, world):
    board_extra = {"pipeline": junk([str(world["pipeline"]), str(world["spare_pipeline"])]), "offset": junk()}
    paths = ["/deals/board", "/deals/board/filter", f"/deals/board/column/{world['stage']}"]

    @FUZZ
    @given(path=st.sampled_from(paths), params=list_params(DEAL.filters, board_extra), htmx=st.booleans())
    def run(path, params, htmx):
        url = f"{path}?{_query(params)}"
        check(admin_client.get(url, headers=HX if htmx else {}), url)

    run()


@pytest.mark.slow
def test_dashboard_search_and_lookup_parameters_never_500(app, admin_client, world):
    ids = [str(world[k]) for k in ("contact", "company", "deal", "lead", "sales", "trashed_contact")]
    targets = st.one_of(
        st.tuples(
            st.sampled_from(["/"] + [f"/dashboard/{p}" for p in PANELS] + ["/dashboard/nope"]),
            st.fixed_dictionaries({}, optional={"owner": junk(["me", "all", *ids])}),
        ),
        st.tuples(st.just("/search"), st.fixed_dictionaries({}, optional={"q": junk()})),
        st.tuples(
            st.just("/contacts/check-email"),
            st.fixed_dictionaries({}, optional={"email": junk(), "exclude": junk(ids)}),
        ),
        st.tuples(
            st.sampled_from(["/activities/timeline", "/activities/new", "/deals/new"]),
            st.fixed_dictionaries(
                {}, optional={k: junk(ids) for k in ("contact", "company", "deal", "lead", "pipeline")}
            ),
        ),
        st.tuples(
            st.just("/trash/purge"),
            st.fixed_dictionaries(
                {},
                optional={
                    "item": st.lists(st.one_of(junk(), st.sampled_from(ids).map(lambda i: f"contact:{i}")), max_size=3)
                },
            ),
        ),
    )

    @FUZZ
    @given(target=targets, htmx=st.booleans())
    def run(target, htmx):
        path, params = target
        url = f"{path}?{_query(params)}"
        check(admin_client.get(url, headers=HX if htmx else {}), url)

    run()


# --- forms ------------------------------------------------------------------------------------


def form_targets(world: World) -> list[tuple[str, dict[str, st.SearchStrategy]]]:
    ids = [
        str(world[k])
        for k in (
            "contact",
            "company",
            "deal",
            "lead",
            "stage",
            "stage2",
            "tag",
            "sales",
            "pipeline",
            "trashed_contact",
        )
    ]
    any_id = junk(ids)
    contact_fields = {
        k: junk()
        for k in (
            "first_name",
            "last_name",
            "email",
            "phone",
            "mobile",
            "title",
            "department",
            "status",
            "lead_source",
            "linkedin_url",
            "birthday",
            "city",
            "country",
            "do_not_contact",
            "notes",
        )
    }
    # Edit forms post the version they were rendered with: junk is a 422, never a 500.
    version = junk(["1", "2", "999999999", "1000000000"])
    contact_fields.update(primary_company_id=any_id, owner_id=any_id, version=version)
    deal_fields = {
        k: junk()
        for k in (
            "name",
            "value",
            "currency",
            "probability",
            "expected_close_date",
            "source",
            "lost_reason",
            "description",
        )
    }
    deal_fields.update(stage_id=any_id, company_id=any_id, contact_id=any_id, owner_id=any_id, version=version)
    activity_fields = {
        k: junk()
        for k in ("type", "subject", "description", "status", "priority", "due_date", "due_time", "duration_minutes")
    }
    activity_fields.update(
        owner_id=any_id, contact_id=any_id, company_id=any_id, deal_id=any_id, lead_id=any_id, version=version
    )
    company_fields = {
        k: junk()
        for k in (
            "name",
            "website",
            "email",
            "phone",
            "industry",
            "size",
            "employee_count",
            "annual_revenue",
            "street",
            "city",
            "state",
            "postal_code",
            "country",
            "description",
        )
    }
    company_fields.update(owner_id=any_id, version=version)
    lead_fields = {
        k: junk()
        for k in (
            "first_name",
            "last_name",
            "email",
            "phone",
            "title",
            "company_name",
            "website",
            "source",
            "score",
            "estimated_value",
            "notes",
        )
    }
    lead_fields.update(owner_id=any_id, version=version)
    stage_fields = {
        "name": junk(),
        "probability": junk(["0", "100", "101"]),
        "is_won": junk(["y"]),
        "is_lost": junk(["y"]),
    }
    contact, deal, activity = world["contact"], world["deal"], world["activity"]
    return [
        ("/contacts", contact_fields),
        (f"/contacts/{contact}", contact_fields),
        (f"/contacts/{contact}/fields/city", {"city": junk(), "original": junk()}),
        (f"/contacts/{contact}/fields/email", {"email": junk(), "original": junk()}),
        (f"/contacts/{contact}/fields/status", {"status": junk(), "original": junk(["customer", "lead"])}),
        ("/contacts/bulk/tag", {"ids": st.lists(any_id, max_size=3), "tag_id": any_id}),
        ("/contacts/bulk/owner", {"ids": st.lists(any_id, max_size=3), "owner_id": any_id}),
        ("/contacts/bulk/restore", {"ids": st.lists(any_id, max_size=3)}),
        (f"/companies/{world['company']}", company_fields),
        (f"/leads/{world['lead']}", lead_fields),
        ("/deals", deal_fields),
        (f"/deals/{deal}", deal_fields),
        (
            f"/deals/{deal}/move",
            {"stage_id": any_id, "before_id": any_id, "after_id": any_id, "version": junk(), "lost_reason": junk()},
        ),
        (f"/deals/{deal}/lost", {"lost_reason": junk()}),
        ("/activities", activity_fields),
        (f"/activities/{activity}", activity_fields),
        ("/pipelines/new", {"name": junk(), "currency": junk(["USD", "EUR"]), "is_default": junk(["y"])}),
        (f"/pipelines/{world['pipeline']}/edit", {"name": junk(), "currency": junk(["USD"]), "is_default": junk()}),
        (f"/pipelines/{world['pipeline']}/stages/new", stage_fields),
        (f"/pipelines/stages/{world['stage2']}/edit", stage_fields),
        (f"/pipelines/{world['pipeline']}/stages/reorder", {"stage_id": st.lists(any_id, max_size=6)}),
        (f"/pipelines/{world['spare_pipeline']}/delete", {"move_to_stage_id": any_id}),
        (f"/tags/contact/{contact}/assign", {"tag_id": any_id, "name": junk(), "color": junk(["#ff0000", "#FFF"])}),
        (f"/tags/contact/{contact}/remove", {"tag_id": any_id}),
        ("/trash/restore", {"item": st.lists(st.one_of(junk(), any_id.map(lambda i: f"contact:{i}")), max_size=3)}),
        ("/login", {"email": junk(), "password": junk(), "remember": junk(["y"])}),
    ]


@pytest.mark.slow
def test_forms_never_500(app, admin_client, world):
    targets = form_targets(world)

    @FORM_FUZZ
    @given(data=st.data(), htmx=st.booleans())
    def run(data, htmx):
        path, fields = data.draw(st.sampled_from(targets))
        form = data.draw(st.fixed_dictionaries({}, optional=fields))
        query = data.draw(list_params(CONTACT.filters if path.startswith("/contacts/bulk") else None))
        url = f"{path}?{_query(query)}" if query else path
        check(admin_client.post(url, data=form, headers=HX if htmx else {}), (url, form))

    run()


@pytest.mark.slow
def test_json_bodies_never_500(app, admin_client, world):
    """Flask-WTF reads a JSON body as the form: any JSON value, at any form route, is a 4xx or a save."""
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), junk(), st.text(max_size=10)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=6,
    )
    targets = form_targets(world)

    @settings(FUZZ, max_examples=150)
    @given(data=st.data())
    def run(data):
        path, fields = data.draw(st.sampled_from(targets))
        body = data.draw(
            st.one_of(
                st.fixed_dictionaries({}, optional={name: json_values for name in fields}),
                json_values,
            )
        )
        check(admin_client.post(path, json=body), (path, body))

    run()


def test_junk_path_segments_are_404_not_500(app, admin_client):
    for path in (
        "/contacts/not-a-uuid",
        f"/contacts/{uuid.uuid4()}/fields/nope",
        "/dashboard/%00",
        f"/tags/nope/{uuid.uuid4()}",
        f"/trash/nope/{uuid.uuid4()}",
        "/deals/board/column/123",
        "/internal/orgs/%00/stats",
    ):
        check(admin_client.get(path), path)


# --- regressions found by the fuzzing above ----------------------------------------------------


@pytest.mark.parametrize("raw", ["²", "--5", "١٢", "-"])
def test_whole_number_parameters_refuse_non_ascii_digits(raw, app, admin_client, world):
    """str.isdigit() accepted "²" and lstrip("-") accepted "--5"; int() then raised (a 500)."""
    assert admin_client.get(f"/contacts?page={raw}").status_code == 400
    assert admin_client.get(f"/deals/board/column/{world['stage']}?offset={raw}", headers=HX).status_code == 400
    move = admin_client.post(
        f"/deals/{world['deal']}/move", data={"stage_id": str(world["stage2"]), "version": raw}, headers=HX
    )
    assert move.status_code == 400


def test_filter_group_with_non_ascii_digits_is_shown_inline(app, admin_client):
    response = admin_client.get("/contacts?f=²:first_name.equals.x&f=1:nope.equals.y", headers=HX)
    assert response.status_code == 422


@pytest.mark.parametrize("path", ["/contacts/export.csv", "/deals/export.csv"])
def test_export_with_an_unknown_sort_is_refused_before_streaming(path, app, admin_client):
    response = admin_client.get(f"{path}?sort=-nope")
    assert response.status_code in (400, 422) and response.mimetype != "text/csv"


@pytest.mark.parametrize(
    "url", ["/contacts?q=%00", "/search?q=a%00", "/trash?q=%00", "/deals/board?q=%00", "/contacts?x%00=1"]
)
def test_nul_in_a_query_string_is_400(url, app, admin_client):
    """PostgreSQL refuses NUL in text: these were 500s there."""
    response = admin_client.get(url)
    assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)


def test_nul_in_a_form_is_400(app, admin_client, world):
    created = admin_client.post("/contacts", data={"first_name": "a\x00b", "status": "prospect"})
    assert created.status_code == 400
    field = admin_client.post(f"/contacts/{world['contact']}/fields/city", data={"city": "x\x00"}, headers=HX)
    assert field.status_code == 400


def test_board_column_opened_as_a_page_redirects_to_the_board(app, admin_client, world):
    response = admin_client.get(f"/deals/board/column/{world['stage']}?q=x")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/deals/board?pipeline={world['pipeline']}&q=x"

"""Safe query parameters: junk gives a readable 400 (BadRequest), never a 500."""

import uuid

import pytest

from crm_web.errors import BadRequest
from crm_web.params import get_choice_param, get_int_param, get_text_param, get_uuid_list, get_uuid_param
from crm_web.views.listing import parse_list_query


@pytest.mark.parametrize("query,expected", [("", 1), ("page=3", 3), ("page=", 1), ("page=%20", 1)])
def test_int_param_valid(app, query, expected):
    with app.test_request_context(f"/?{query}"):
        assert get_int_param("page", 1, min_value=1) == expected


@pytest.mark.parametrize(
    "query", ["page=abc", "page=1.5", "page=0", "page=-1", "page=99999999999999999999999", "page=1e3", "page=%00"]
)
def test_int_param_invalid(app, query):
    with app.test_request_context(f"/?{query}"), pytest.raises(BadRequest) as error:
        get_int_param("page", 1, min_value=1, max_value=1000)
    assert "page" in error.value.message


def test_uuid_params(app):
    good = uuid.uuid4()
    with app.test_request_context(f"/?owner={good}&bad=xyz"):
        assert get_uuid_param("owner") == good
        assert get_uuid_param("missing") is None
        with pytest.raises(BadRequest):
            get_uuid_param("bad")
    with app.test_request_context("/", method="POST", data={"ids": [str(good), "nope"]}), pytest.raises(BadRequest):
        get_uuid_list("ids")


def test_choice_and_text_params(app):
    with app.test_request_context("/?scope=mine&q=" + "x" * 300):
        assert get_choice_param("scope", ["all", "mine"]) == "mine"
        with pytest.raises(BadRequest):
            get_text_param("q")
    with app.test_request_context("/?scope=everyone"), pytest.raises(BadRequest):
        get_choice_param("scope", ["all", "mine"])


def test_list_query_builds_canonical_links(app):
    with app.test_request_context("/?page=2&per_page=50&sort=name&q=ann"):
        query = parse_list_query()
        assert query.url("/contacts", page=None) == "/contacts?q=ann&sort=name&per_page=50"
        assert query.sort_url("/contacts", "name") == "/contacts?q=ann&sort=-name&per_page=50"
        assert query.sort_state("name") == "sort-asc"


def test_bad_params_become_400_pages(app, client, login):
    """A BadRequest raised by any view renders as a readable 400 (page, toast or JSON)."""
    from crm_web.errors import error_response

    with app.test_request_context("/contacts?page=abc"):
        response = error_response(400, "Parameter 'page' must be a whole number, not 'abc'.")
        assert response.status_code == 400
        assert "whole number" in response.get_data(as_text=True)

"""State across requests: scenarios that routes require and move, and variables templates set."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from sandbox.errors import StubConfigError
from sandbox.profile.models import HttpService
from sandbox.services.http import _DISPATCHER, create_app, journal_of
from sandbox.services.scenarios import stored
from tests.services.helpers import context

Client = TestClient[Any, Any]

CHECKOUT = [
    {
        "method": "POST",
        "path": "/cart",
        "scenario": {"name": "checkout", "when": "Started", "then": "filled"},
        "response": {"status": 201, "body": "added"},
    },
    {
        "method": "POST",
        "path": "/pay",
        "scenario": {"name": "checkout", "when": "filled", "then": "paid"},
        "response": {"body": "paid"},
    },
    {
        "method": "GET",
        "path": "/order",
        "scenario": {"name": "checkout", "when": "paid"},
        "response": {"json": {"state": "{{ scenarios.checkout }}"}},
    },
    {"method": "GET", "path": "/order", "response": {"status": 409, "body": "not paid"}},
]


def spec(routes: list[dict[str, Any]], **extra: Any) -> HttpService:
    return HttpService.model_validate({"kind": "http", "routes": routes, **extra})


@pytest.fixture
def client(aiohttp_client: Any) -> Any:
    async def make(routes: list[dict[str, Any]], **extra: Any) -> tuple[Client, Any]:
        app = create_app(spec(routes, **extra), context("shop"))
        made: Client = await aiohttp_client(app)
        return made, app

    return make


async def test_a_three_step_scenario_moves_in_order(client: Any) -> None:
    c, _ = await client(CHECKOUT)
    assert (await c.get("/order")).status == 409  # not paid yet: the fallback answers
    refused = await c.post("/pay")  # the scenario is still `Started`
    assert refused.status == 404
    why = (await refused.json())["closest"][0]["why"]
    assert why == "scenario 'checkout' is in state 'Started', not 'filled'"
    assert (await c.post("/cart")).status == 201
    assert (await c.post("/cart")).status == 404  # once filled, the cart route waits again
    assert await (await c.post("/pay")).text() == "paid"
    order = await c.get("/order")
    assert order.status == 200
    assert await order.json() == {"state": "paid"}


async def test_a_refused_scenario_step_is_journalled_with_the_condition(client: Any) -> None:
    c, app = await client(CHECKOUT)
    await c.post("/pay")
    [entry] = journal_of(app)
    assert entry.miss is not None
    assert entry.miss.route == 1
    assert "not 'filled'" in entry.miss.why


async def test_a_counter_counts_and_reset_starts_it_again(client: Any) -> None:
    routes = [
        {
            "method": "POST",
            "path": "/visits",
            "set": {"count": "{{ vars.count + 1 }}", "last": "{{ json.who }}"},
            "response": {"json": {"count": "{{ vars.count }}", "last": "{{ vars.last }}"}},
        },
        {"method": "GET", "path": "/visits", "response": {"body": "{{ vars.count }}"}},
    ]
    c, app = await client(routes, vars={"count": 0})
    for n in (1, 2, 3):
        resp = await c.post("/visits", json={"who": f"u{n}"})
        assert await resp.json() == {"count": str(n), "last": f"u{n}"}
    assert await (await c.get("/visits")).text() == "3"
    dispatcher = app[_DISPATCHER]
    assert dispatcher.state.vars == {"count": 3, "last": "u3"}
    dispatcher.reset()
    assert dispatcher.state.vars == {"count": 0}
    assert await (await c.get("/visits")).text() == "0"


async def test_default_gives_a_first_value_without_declaring_it(client: Any) -> None:
    routes = [
        {
            "path": "/n",
            "set": {"n": "{{ (vars.n | default(10)) + 5 }}"},
            "response": {"body": "{{ vars.n }}"},
        }
    ]
    c, _ = await client(routes)
    assert [await (await c.get("/n")).text() for _ in range(2)] == ["15", "20"]


async def test_a_failing_set_template_answers_500_and_changes_nothing(client: Any) -> None:
    routes = [{"path": "/x", "set": {"n": "{{ vars.missing + 1 }}"}, "response": {}}]
    c, app = await client(routes)
    resp = await c.get("/x")
    assert resp.status == 500
    document = await resp.json()
    assert document["where"] == "services.shop.routes[0].set.n"
    assert "missing" in document["detail"]
    assert app[_DISPATCHER].state.vars == {}


def test_bad_set_templates_and_names_are_refused() -> None:
    with pytest.raises(StubConfigError, match=r"routes\[0\]\.set\.n"):
        create_app(spec([{"path": "/", "set": {"n": "{{ oops"}, "response": {}}]), context("s"))
    with pytest.raises(ValidationError, match="not a variable name"):
        spec([{"path": "/", "set": {"a-b": 1}, "response": {}}])


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), (" -2 ", -2), ("1.5", 1.5), ("abc", "abc"), ("1e3", "1e3"), (7, 7)],
)
def test_numbers_are_stored_as_numbers(text: Any, value: Any) -> None:
    assert stored(text) == value

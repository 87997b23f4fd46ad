"""The route index keeps profile order exactly; prebuilt answers equal those built per request."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from sandbox.profile.models import Route
from sandbox.services.http_answers import build
from sandbox.services.http_index import RouteIndex, prebuild, uses_request
from sandbox.services.http_routes import Incoming, compile_routes, find

ROUTES: list[dict[str, Any]] = [
    {"method": "GET", "path": "/users/{id}", "match": {"query": {"v": "^2$"}},
     "response": {"body": "param, v=2"}},
    {"method": "GET", "path": "/users/me", "response": {"body": "literal me"}},
    {"method": "POST", "path": "/users/me", "response": {"body": "literal me, POST"}},
    {"method": "*", "path": "/users/{id}", "response": {"body": "param, any method"}},
    {"method": "GET", "path": "/users/me", "response": {"body": "shadowed literal"}},
    {"method": "GET", "path": "/health", "response": {"json": {"ok": True}}},
    {"method": "GET", "path": "/files/{rest:.*}", "response": {"body": "rest"}},
    {"path": "/a b/c.d", "response": {"body": "literal with specials"}},
    {"method": "GET", "path": "/health", "match": {"headers": {"x-t": "1"}},
     "response": {"body": "never: the first /health wins"}},
]  # fmt: skip
PATHS = ["/users/me", "/users/7", "/health", "/files/a/b", "/a b/c.d", "/a%20b/c.d", "/nope", "/"]
METHODS = ["GET", "POST", "HEAD", "DELETE"]
QUERIES = [{}, {"v": "2"}]


def _request(method: str, path: str, query: dict[str, str]) -> Incoming:
    return Incoming(
        method=method,
        path=path,
        query=MultiDictProxy(MultiDict(query)),
        headers=CIMultiDictProxy(CIMultiDict({"X-T": "1"})),
        body="",
    )


def test_the_index_finds_what_the_scan_finds_for_every_request() -> None:
    routes = compile_routes([Route.model_validate(r) for r in ROUTES], "web")
    index = RouteIndex(routes)
    checked = 0
    for method, path, query in itertools.product(METHODS, PATHS, QUERIES):
        req = _request(method, path, query)
        scanned, indexed = find(routes, req), find(index.candidates(path), req)
        assert (scanned and (scanned[0].where, scanned[1])) == (
            indexed and (indexed[0].where, indexed[1])
        ), (method, path, query)
        checked += scanned is not None
    assert checked > 20  # most requests hit a route, several through each kind of path


def test_profile_order_wins_over_literal_paths() -> None:
    routes = compile_routes([Route.model_validate(r) for r in ROUTES], "web")
    hit = find(RouteIndex(routes).candidates("/users/me"), _request("DELETE", "/users/me", {}))
    assert hit is not None
    assert hit[0].where == "services.web.routes[3]"  # the {id} route before the later literal


@pytest.mark.parametrize(
    "response",
    [
        {"body": "ok"},
        {"status": 201, "headers": {"X-One": "1", "Content-Type": "text/csv"}, "body": "a,b"},
        {"json": {"ok": True, "list": [1, "two", None], "text": "é"}},
        {"status": 204},
        {"status": 404, "headers": {"X-Why": "gone"}},
    ],
)
async def test_a_prebuilt_answer_equals_the_one_built_per_request(response: dict[str, Any]) -> None:
    route = Route.model_validate({"path": "/", "response": response})
    (answer,) = compile_routes([route], "web")[0].answers
    built = prebuild(answer)
    assert built is not None
    fresh, once = await build(answer, {}, None), built.response()
    assert (once.status, once.body, dict(once.headers)) == (
        fresh.status,
        fresh.body,
        dict(fresh.headers),
    )


@pytest.mark.parametrize(
    "response",
    [{"body": "{{ path.id }}"}, {"headers": {"X": "{{ method }}"}}, {"json": {"a": "{{ query }}"}},
     {"body": "ok", "delay": "10ms"}, {"file": "x.txt"}],
)  # fmt: skip
def test_answers_that_depend_on_the_request_or_time_are_not_prebuilt(
    response: dict[str, Any],
) -> None:
    route = Route.model_validate({"path": "/{id}", "response": response})
    (answer,) = compile_routes([route], "web")[0].answers
    assert prebuild(answer) is None


@pytest.mark.parametrize(
    ("route", "reads"),
    [
        ({"path": "/", "response": {"body": "ok"}}, False),
        ({"path": "/", "match": {"headers": {"a": "b"}}, "response": {"body": "ok"}}, False),
        ({"path": "/", "match": {"query": {"a": "b"}}, "response": {"body": "ok"}}, True),
        ({"path": "/", "match": {"json": {"a": 1}}, "response": {"body": "ok"}}, True),
        ({"path": "/", "match": {"body": "x"}, "response": {"body": "ok"}}, True),
        ({"path": "/", "response": {"body": "{{ query.a }}"}}, True),
        ({"path": "/", "response": {"file": "a.txt", "headers": {"X": "{{ json }}"}}}, True),
    ],
)
def test_what_makes_a_stub_parse_the_query_and_the_body(route: dict[str, Any], reads: bool) -> None:
    assert uses_request(compile_routes([Route.model_validate(route)], "web")) is reads

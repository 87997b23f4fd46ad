"""The route index keeps profile order exactly; prebuilt answers equal those built per request."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from sandbox.profile.models import Route
from sandbox.services.http_answers import Head, build, build_body
from sandbox.services.http_index import PathIndex, literal_of, prebuild
from sandbox.services.http_match import Router
from sandbox.services.http_routes import CompiledRoute, Incoming, compile_routes
from sandbox.services.scenarios import StubState

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


def _scan(routes: list[CompiledRoute], req: Incoming) -> str | None:
    """The first route in profile order that takes `req`, trying every route."""
    for route in routes:
        if (
            route.pattern.fullmatch(req.path)
            and route.accepts(req.method)
            and (route.conditions is None or route.conditions.failure(req) is None)
        ):
            return route.where
    return None


def test_the_index_finds_what_the_scan_finds_for_every_request() -> None:
    routes = compile_routes([Route.model_validate(r) for r in ROUTES], "web")
    router, state = Router(routes), StubState({})
    checked = 0
    for method, path, query in itertools.product(METHODS, PATHS, QUERIES):
        req = _request(method, path, query)
        found = router.find(req, state)
        assert (found and found[1].where) == _scan(routes, req), (method, path, query)
        checked += found is not None
    assert checked > 20  # most requests hit a route, several through each kind of path


def test_profile_order_wins_over_literal_paths() -> None:
    routes = compile_routes([Route.model_validate(r) for r in ROUTES], "web")
    found = Router(routes).find(_request("DELETE", "/users/me", {}), StubState({}))
    assert found is not None
    assert found[1].where == "services.web.routes[3]"  # the {id} route before the later literal


def test_the_candidates_of_a_path() -> None:
    index = PathIndex(["/a", "/{x}", "/b", "/a", "/c/{y}"])
    assert list(index.candidates("/a")) == [0, 1, 3, 4]
    assert list(index.candidates("/b")) == [1, 2, 4]
    assert list(index.candidates("/zzz")) == [1, 4]


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


# Routes told apart by a literal query value (narrowed), mixed with ones that are not.
NARROWED: list[dict[str, Any]] = [
    *({"method": "GET", "path": "/items/{id}", "match": {"query": {"kind": f"^k{i}$"}},
       "response": {"body": f"k{i}"}} for i in range(6)),
    {"method": "GET", "path": "/items/7", "match": {"query": {"kind": "^k\\.7$"}},
     "response": {"body": "escaped dot, literal path"}},
    {"method": "GET", "path": "/items/{id}", "match": {"query": {"kind": "^k9$", "x": "^1$"}},
     "response": {"body": "two literals"}},
    {"method": "GET", "path": "/items/{id}", "match": {"query": {"kind": "^k\\d$"}},
     "response": {"body": "a class: not a literal"}},
    {"method": "GET", "path": "/items/{id}", "match": {"query": {"kind": "k"}},
     "response": {"body": "unanchored: not narrowed"}},
    {"method": "GET", "path": "/items/{id}", "response": {"body": "no condition"}},
]  # fmt: skip
KINDS: list[list[str]] = [[], ["k3"], ["k3\n"], ["k.7"], ["kx7"], ["k7"], ["k9"], ["zz", "k5"],
                          ["k1", "k0"], ["K3"], ["k"]]  # fmt: skip


def test_narrowing_by_a_literal_query_value_finds_what_the_scan_finds() -> None:
    routes = compile_routes([Route.model_validate(r) for r in NARROWED], "web")
    router, state = Router(routes), StubState({})
    assert router._narrowing  # the case under test: narrowing is in use
    answered = set()
    for path, kinds, extra in itertools.product(["/items/7", "/items/8"], KINDS, [{}, {"x": "1"}]):
        query = MultiDict([("kind", kind) for kind in kinds] + list(extra.items()))
        req = Incoming(
            method="GET",
            path=path,
            query=MultiDictProxy(query),
            headers=CIMultiDictProxy(CIMultiDict()),
            body="",
        )
        found = router.find(req, state)
        expected = _scan(routes, req)
        assert (found and found[1].where) == expected, (path, kinds, extra)
        answered.add(expected)
    assert len(answered) >= 8  # most routes answered some request


@pytest.mark.parametrize(
    ("pattern", "text"),
    [("^k19$", "k19"), ("^a\\.b\\-c$", "a.b-c"), ("^$", ""), ("^k\\d$", None), ("k$", None),
     ("^k\\$", None), ("^a|b$", None), ("^a.b$", None)],
)  # fmt: skip
def test_literal_of_reads_only_plain_anchored_patterns(pattern: str, text: str | None) -> None:
    assert literal_of(pattern) == text


def test_a_literal_route_between_two_parameter_routes_keeps_the_shared_match() -> None:
    routes = compile_routes(
        [
            Route.model_validate(
                {"path": "/{x}", "match": {"headers": {"x-t": "^2$"}}, "response": {}}
            ),
            Route.model_validate(
                {"path": "/a", "match": {"headers": {"x-t": "^3$"}}, "response": {}}
            ),
            Route.model_validate({"path": "/{x}", "response": {"body": "third"}}),
        ],
        "web",
    )
    found = Router(routes).find(_request("GET", "/a", {}), StubState({}))
    assert found is not None
    assert (found[0], found[2]) == (2, {"x": "a"})


@pytest.mark.parametrize(
    "response",
    [{"body": "hello {{ path.id }}"}, {"status": 201, "headers": {"X": "1"}, "body": "{{ path }}"},
     {"json": {"id": "{{ path.id }}", "n": 1}},
     {"headers": {"Content-Type": "text/plain; charset=latin-1"}, "body": "é {{ path.id }}"},
     {"headers": {"Content-Type": "text/plain; charset=ascii"}, "body": "é {{ path.id }}"},
     {"body": "{{ path.nope }}"}],
)  # fmt: skip
async def test_an_answer_with_a_templated_body_built_from_its_head_equals_build(
    response: dict[str, Any],
) -> None:
    route = Route.model_validate({"path": "/{id}", "response": response})
    (answer,) = compile_routes([route], "web")[0].answers
    head = Head.of(answer)
    assert head is not None
    variables = {"path": {"id": "7"}}
    fresh, fast = await build(answer, variables, None), build_body(answer, head, variables)
    assert (fast.status, fast.body, dict(fast.headers)) == (
        fresh.status,
        fresh.body,
        dict(fresh.headers),
    )

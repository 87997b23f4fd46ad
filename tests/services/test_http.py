"""HTTP stubs: routing, matchers, responses, files, 404 near misses, serving, proxying."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from sandbox.errors import StubConfigError
from sandbox.profile.models import CommandService, HttpService
from sandbox.services import serve
from sandbox.services.faults import reset
from sandbox.services.http import create_app, journal_of, serve_http
from tests.services.helpers import (
    DEADLINE,
    Listen,
    Start,
    connection,
    context,
    http_spec,
    ipv6_available,
    url_of,
)

Client = TestClient[Any, Any]


@pytest.fixture
def client(aiohttp_client: Any) -> Any:
    """Factory: an aiohttp test client for create_app(routes...)."""

    async def make(*routes: dict[str, Any], **ctx: Any) -> Client:
        app = create_app(http_spec(*routes), context("web", **ctx))
        made: Client = await aiohttp_client(app)
        return made

    return make


async def test_path_parameters_fill_the_json_template(client: Any) -> None:
    c = await client(
        {"method": "GET", "path": "/users/{id}", "response": {"json": {"id": "{{ path.id }}"}}}
    )
    resp = await c.get("/users/42")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == {"id": "42"}


async def test_catch_all_parameter_takes_the_rest_of_the_path(client: Any) -> None:
    c = await client({"path": "/api/{rest:.*}", "response": {"body": "rest={{ path.rest }}"}})
    resp = await c.get("/api/a/b/c")
    assert await resp.text() == "rest=a/b/c"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_a_plain_parameter_is_one_segment(client: Any) -> None:
    c = await client({"path": "/users/{id}", "response": {"body": "one"}})
    assert (await c.get("/users/1/posts")).status == 404


async def test_first_route_in_profile_order_wins(client: Any) -> None:
    c = await client(
        {"path": "/x", "response": {"body": "first"}},
        {"path": "/{any}", "response": {"body": "second"}},
    )
    assert await (await c.get("/x")).text() == "first"
    assert await (await c.get("/y")).text() == "second"


async def test_a_failing_match_falls_through_to_the_next_route(client: Any) -> None:
    c = await client(
        {"path": "/items", "match": {"query": {"page": "^1$"}}, "response": {"body": "page one"}},
        {"path": "/items", "response": {"body": "other"}},
    )
    assert await (await c.get("/items?page=1")).text() == "page one"
    assert await (await c.get("/items?page=2")).text() == "other"
    assert await (await c.get("/items")).text() == "other"


async def test_header_match_is_case_insensitive_and_searches(client: Any) -> None:
    c = await client(
        {"path": "/", "match": {"headers": {"x-token": "secret"}}, "response": {"status": 204}},
        {"path": "/", "response": {"status": 401}},
    )
    assert (await c.get("/", headers={"X-Token": "my-secret-1"})).status == 204
    assert (await c.get("/", headers={"X-Token": "nope"})).status == 401


async def test_json_match_regex_for_strings_equality_for_the_rest(client: Any) -> None:
    c = await client(
        {
            "method": "POST",
            "path": "/users",
            "match": {"json": {"name": ".+", "age": 30, "admin": True}},
            "response": {"status": 201, "json": {"created": "{{ json.name }}"}},
        },
        {"method": "POST", "path": "/users", "response": {"status": 422}},
    )
    good = await c.post("/users", json={"name": "ada", "age": 30, "admin": True})
    assert good.status == 201
    assert await good.json() == {"created": "ada"}
    assert (await c.post("/users", json={"name": "", "age": 30, "admin": True})).status == 422
    assert (await c.post("/users", json={"name": "ada", "age": 31, "admin": True})).status == 422
    # JSON 1 is not true, even though Python's 1 == True.
    assert (await c.post("/users", json={"name": "ada", "age": 30, "admin": 1})).status == 422
    assert (await c.post("/users", data="not json")).status == 422


async def test_json_match_regex_sees_numbers_as_their_json_text(client: Any) -> None:
    c = await client(
        {"method": "POST", "path": "/", "match": {"json": {"n": "^4\\d$"}}, "response": {}},
        {"method": "POST", "path": "/", "response": {"status": 400}},
    )
    assert (await c.post("/", json={"n": 42})).status == 200
    assert (await c.post("/", json={"n": 52})).status == 400


async def test_body_match_searches_the_text(client: Any) -> None:
    c = await client(
        {"path": "/", "match": {"body": "hello"}, "response": {"body": "hi"}},
        {"path": "/", "response": {"body": "what?"}},
    )
    assert await (await c.post("/", data="well hello there")).text() == "hi"
    assert await (await c.post("/", data="bye")).text() == "what?"


async def test_status_headers_and_body(client: Any) -> None:
    c = await client(
        {
            "path": "/made",
            "response": {
                "status": 201,
                "headers": {"X-Thing": "{{ method }}-1", "Content-Type": "text/csv"},
                "body": "a,b\n",
            },
        }
    )
    resp = await c.put("/made")
    assert resp.status == 201
    assert resp.headers["X-Thing"] == "PUT-1"
    assert resp.headers["Content-Type"] == "text/csv"
    assert await resp.read() == b"a,b\n"


async def test_responses_are_answered_in_turn_then_repeat(client: Any) -> None:
    c = await client({"path": "/flaky", "responses": [{"status": 503}, {"status": 200}]})
    statuses = [(await c.get("/flaky")).status for _ in range(5)]
    assert statuses == [503, 200, 503, 200, 503]


async def test_delay_holds_the_answer(client: Any) -> None:
    c = await client({"path": "/slow", "response": {"delay": "200ms", "body": "late"}})
    began = time.monotonic()
    resp = await c.get("/slow")
    assert await resp.text() == "late"
    assert time.monotonic() - began >= 0.2


async def test_head_works_wherever_get_does(client: Any) -> None:
    c = await client(
        {"method": "GET", "path": "/page", "response": {"body": "twelve bytes"}},
        {"method": "POST", "path": "/form", "response": {"body": "posted"}},
    )
    head = await c.head("/page")
    assert head.status == 200
    assert head.headers["Content-Length"] == "12"
    assert await head.read() == b""
    assert (await c.head("/form")).status == 404


async def test_a_service_without_routes_names_itself(client: Any) -> None:
    c = await client()
    for path in ("/", "/health"):
        resp = await c.get(path)
        assert resp.status == 200
        assert await resp.json() == {
            "service": "web",
            "kind": "http",
            "address": "127.0.0.1",
            "port": 8080,
            "ok": True,
        }
    assert (await c.head("/health")).status == 200
    assert (await c.get("/other")).status == 404


async def test_file_is_served_from_the_profile_folder(client: Any, tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "index.html").write_text("<h1>{{ not a template }}</h1>")
    c = await client({"path": "/", "response": {"file": "pages/index.html"}}, profile_dir=tmp_path)
    resp = await c.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert await resp.text() == "<h1>{{ not a template }}</h1>"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../secret.txt", "outside the profile's folder"),
        ("link/secret.txt", "symbolic link"),
        ("/etc/hostname", "absolute path"),
        ("missing.txt", "cannot be read"),
    ],
)
async def test_files_outside_the_profile_folder_are_refused(
    client: Any, tmp_path: Path, name: str, why: str
) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    (tmp_path / "secret.txt").write_text("do not serve")
    (profile / "link").symlink_to(tmp_path)  # a symlink must not be a way out
    c = await client({"path": "/", "response": {"file": name}}, profile_dir=profile)
    resp = await c.get("/")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == "the response file cannot be served"
    assert why in body["detail"]
    assert "do not serve" not in await resp.text()


async def test_without_a_profile_folder_no_file_is_served(client: Any) -> None:
    c = await client({"path": "/", "response": {"file": "x.txt"}})
    resp = await c.get("/")
    assert resp.status == 500
    assert "no profile folder" in (await resp.json())["detail"]


async def test_404_lists_a_route_with_another_method(client: Any) -> None:
    c = await client({"method": "POST", "path": "/users", "response": {"status": 201}})
    resp = await c.get("/users")
    assert resp.status == 404
    assert await resp.json() == {
        "error": "no route matched",
        "method": "GET",
        "path": "/users",
        "closest": [
            {
                "route": 0,
                "method": "POST",
                "path": "/users",
                "why": "method GET does not match POST",
            }
        ],
    }


async def test_404_says_which_match_condition_failed(client: Any) -> None:
    c = await client(
        {"path": "/q", "match": {"query": {"page": "^1$"}}, "response": {}},
        {"path": "/q", "match": {"headers": {"X-Key": "k"}}, "response": {}},
        {"path": "/q", "match": {"json": {"name": "a"}}, "response": {}},
        {"path": "/q", "match": {"body": "^x"}, "response": {}},
    )
    resp = await c.get("/q?page=2")
    closest = (await resp.json())["closest"]
    # One row per method and path: the first route of /q, with the first condition it failed.
    assert closest == [
        {
            "route": 0,
            "method": "*",
            "path": "/q",
            "why": "query parameter page='2' does not match /^1$/",
        }
    ]


async def test_404_lists_each_route_once_however_many_share_its_path(client: Any) -> None:
    c = await client(
        {"method": "POST", "path": "/orders", "match": {"json": {"kind": "a"}}, "response": {}},
        {"method": "POST", "path": "/orders", "match": {"json": {"kind": "b"}}, "response": {}},
        {"method": "POST", "path": "/orders", "match": {"json": {"kind": "c"}}, "response": {}},
        {"method": "GET", "path": "/orders", "response": {}},
    )
    closest = (await (await c.post("/orders", json={"kind": "z"})).json())["closest"]
    assert [(row["route"], row["method"], row["path"]) for row in closest] == [
        (0, "POST", "/orders"),
        (3, "GET", "/orders"),
    ]
    assert "kind" in closest[0]["why"]  # the first condition route 0 failed


async def test_404_names_the_path_parameter_whose_pattern_failed(client: Any) -> None:
    c = await client(
        {"method": "GET", "path": "/users/{id:\\d+}", "response": {}},
        {"method": "GET", "path": "/health", "response": {}},
    )
    resp = await c.get("/users/abc")
    assert resp.status == 404
    assert (await resp.json())["closest"] == [
        {
            "route": 0,
            "method": "GET",
            "path": "/users/{id:\\d+}",
            "why": "path parameter id='abc' does not match /\\d+/",
        }
    ]


async def test_404_suggests_similar_paths_most_similar_first(client: Any) -> None:
    c = await client(
        {"path": "/healthy-ish", "response": {}},
        {"path": "/health", "response": {}},
        {"path": "/metrics", "response": {}},
    )
    closest = (await (await c.get("/helth")).json())["closest"]
    assert [row["path"] for row in closest] == ["/health", "/healthy-ish"]
    assert closest[0]["why"].startswith("path differs (")


async def test_404_has_no_suggestions_when_nothing_is_close(client: Any) -> None:
    c = await client({"path": "/alpha", "response": {}})
    assert (await (await c.get("/zzzzzzzzzz")).json())["closest"] == []


async def test_journal_is_bounded_and_requests_are_logged(aiohttp_client: Any) -> None:
    lines: list[str] = []
    spec = HttpService.model_validate(
        {
            "kind": "http",
            "journal": {"max": 3},
            "routes": [{"path": "/n/{i}", "response": {"body": "ok"}}],
        }
    )
    app = create_app(spec, context("web", log=lines.append))
    c = await aiohttp_client(app)
    for i in range(5):
        assert (await c.get(f"/n/{i}")).status == 200
    assert (await c.get("/nothing")).status == 404
    history = journal_of(app)
    assert [(r.method, r.path, r.status) for r in history] == [
        ("GET", "/n/3", 200),
        ("GET", "/n/4", 200),
        ("GET", "/nothing", 404),
    ]
    assert all(r.latency_ms >= 0 and r.fault is None for r in history)
    assert lines[0].startswith("GET /n/0 200 ")
    assert lines[0].endswith("ms")
    assert lines[-1].startswith("GET /nothing 404 ")


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ({"path": "/{id:[}", "response": {}}, "routes[0].path"),
        ({"path": "/{1x}", "response": {}}, "not a parameter"),
        ({"path": "/", "response": {"body": "{{ oops"}}, "routes[0].response.body"),
        ({"path": "/", "proxy": "nobody"}, "no service named 'nobody'"),
    ],
)
def test_bad_routes_are_refused_when_the_app_is_made(route: dict[str, Any], words: str) -> None:
    with pytest.raises(StubConfigError, match=r".") as caught:
        create_app(http_spec(route), context("web"))
    assert words in caught.value.message


async def test_serve_http_on_a_held_socket_then_close(listen: Listen) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("web", sock, log=lines.append)
    stub = await serve_http(http_spec({"path": "/", "response": {"body": "hi"}}), sock, ctx)
    try:
        async with aiohttp.ClientSession() as session, session.get(ctx.url + "/") as resp:
            assert await resp.text() == "hi"
        assert [(r.path, r.status) for r in stub.journal] == [("/", 200)]
        assert any(line.startswith("GET / 200 ") for line in lines)
    finally:
        await stub.close()
    await stub.close()  # idempotent
    assert sock.fileno() == -1  # the stub owned the socket and closed it
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(ctx.address, ctx.port)


@pytest.mark.skipif(not ipv6_available(), reason="::1 cannot be bound on this machine")
async def test_serve_http_on_ipv6_loopback(listen: Listen, start: Start) -> None:
    sock = listen("::1")
    ctx = context("web", sock)
    assert ctx.url.startswith("http://[::1]:")
    await start(http_spec(), sock, ctx)
    async with aiohttp.ClientSession() as session, session.get(ctx.url + "/health") as resp:
        assert (await resp.json())["address"] == "::1"


def test_url_helper_brackets_ipv6() -> None:
    assert url_of("::1", 80) == "http://[::1]:80"


async def test_an_encoded_slash_stays_inside_its_parameter(client: Any) -> None:
    c = await client({"path": "/files/{name}", "response": {"body": "{{ path.name }}"}})
    resp = await c.get("/files/a%20b%2Fc%25")
    assert await resp.text() == "a b/c%"


async def test_a_client_that_resets_cancels_its_delayed_request(
    listen: Listen, start: Start
) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("web", sock, log=lines.append)
    stub = await start(http_spec({"path": "/slow", "response": {"delay": "30s"}}), sock, ctx)
    async with connection(ctx.address, ctx.port) as (_, writer):
        writer.write(b"GET /slow HTTP/1.1\r\nHost: stub\r\n\r\n")
        await writer.drain()
        # A plain close is a FIN, which may be a half-close still waiting for the answer;
        # only a reset says for sure that the client is gone.
        reset(writer.transport)
    async with asyncio.timeout(DEADLINE):
        while not stub.journal:
            await asyncio.sleep(0.005)
    assert stub.journal[0].status is None
    assert stub.journal[0].client.startswith("127.0.0.1:")  # known though the client left
    assert "(cancelled" in lines[-1]


async def test_a_client_that_closes_ends_its_hanging_request(listen: Listen, start: Start) -> None:
    sock = listen("127.0.0.1")
    ctx = context("web", sock)
    stub = await start(http_spec({"path": "/hang", "fault": "hang"}), sock, ctx)
    async with connection(ctx.address, ctx.port) as (_, writer):
        writer.write(b"GET /hang HTTP/1.1\r\nHost: stub\r\n\r\n")
        await writer.drain()
    async with asyncio.timeout(DEADLINE):
        while not stub.journal:
            await asyncio.sleep(0.005)
    assert stub.journal[0].fault == "hang"


async def test_serve_refuses_a_command_service(listen: Listen) -> None:
    sock = listen("127.0.0.1")
    spec = CommandService.model_validate({"kind": "command", "run": "true"})
    with pytest.raises(ValueError, match="program, not a stub"):
        await serve(spec, sock, context("cache", sock))
    assert sock.fileno() != -1  # on failure the socket stays the caller's


async def test_404_points_out_a_prefix_in_the_way(client: Any) -> None:
    c = await client(
        {"method": "POST", "path": "/users", "response": {}},
        {"method": "GET", "path": "/users/{id}", "response": {}},
    )
    closest = (await (await c.get("/api/users/1")).json())["closest"]
    assert closest[0] == {
        "route": 1,
        "method": "GET",
        "path": "/users/{id}",
        "why": "the path would match without /api in front",
    }

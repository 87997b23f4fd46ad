"""The journal: what HTTP and TCP stubs received, capped and bounded, with the nearest miss."""

from __future__ import annotations

from typing import Any

import aiohttp

from sandbox.profile.models import HttpService, TcpService
from sandbox.services.context import StubServer
from sandbox.services.journal import Entry, Journal, select
from tests.helpers import until as _until
from tests.services.helpers import (
    Listen,
    Start,
    connection,
    context,
    read_exactly,
    read_to_eof,
)


def http(routes: list[dict[str, Any]], **extra: Any) -> HttpService:
    return HttpService.model_validate({"kind": "http", "routes": routes, **extra})


async def _serve(listen: Listen, start: Start, spec: Any) -> tuple[StubServer, str]:
    sock = listen("127.0.0.1")
    ctx = context("api", sock)
    stub = await start(spec, sock, ctx)
    return stub, ctx.url


async def test_an_http_entry_holds_the_whole_request_and_its_answer(
    listen: Listen, start: Start
) -> None:
    spec = http(
        [
            {"method": "GET", "path": "/health", "response": {}},
            {"method": "POST", "path": "/orders/{id}", "response": {"status": 201, "body": "ok"}},
        ]
    )
    stub, url = await _serve(listen, start, spec)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/orders/7?x=1&x=2", json={"n": 1}, headers={"X-Trace": "t1"}) as resp,
    ):
        assert resp.status == 201
    [entry] = stub.journal
    assert (entry.method, entry.path, entry.status) == ("POST", "/orders/7", 201)
    assert entry.query == (("x", "1"), ("x", "2"))
    assert entry.header("x-trace") == "t1"
    assert entry.json == {"n": 1}
    assert (entry.route, entry.route_name) == (1, "POST /orders/{id}")
    assert entry.miss is None
    assert entry.matched
    assert not entry.truncated
    assert entry.client.startswith("127.0.0.1:")
    assert entry.sent_size == 2
    assert entry.latency_ms >= 0
    assert (entry.seq, entry.service) == (1, "api")
    assert Entry.from_json(entry.to_json()) == entry


async def test_bodies_are_capped_and_flagged(listen: Listen, start: Start) -> None:
    spec = http([{"path": "/", "response": {}}], journal={"max": 10, "body_max": "1KiB"})
    stub, url = await _serve(listen, start, spec)
    async with aiohttp.ClientSession() as session, session.post(url + "/", data=b"x" * 5000):
        pass
    [entry] = stub.journal
    assert (len(entry.body), entry.body_size, entry.truncated) == (1024, 5000, True)
    assert entry.json is None
    assert entry.to_json()["truncated"] is True


async def test_an_unmatched_request_keeps_the_nearest_route_and_why(
    listen: Listen, start: Start
) -> None:
    spec = http(
        [
            {"method": "GET", "path": "/health", "response": {}},
            {
                "method": "POST",
                "path": "/orders",
                "match": {"headers": {"x-api-key": "^abc$"}},
                "response": {},
            },
        ]
    )
    stub, url = await _serve(listen, start, spec)
    async with aiohttp.ClientSession() as session, session.post(url + "/orders") as resp:
        assert resp.status == 404
    [entry] = stub.journal
    assert entry.route is None
    assert not entry.matched
    assert entry.miss is not None
    assert (entry.miss.route, entry.miss.name) == (1, "POST /orders")
    assert "x-api-key" in entry.miss.why
    assert "no route; nearest routes[1] POST /orders" in entry.summary


async def test_the_journal_keeps_the_newest_entries(listen: Listen, start: Start) -> None:
    stub, url = await _serve(
        listen, start, http([{"path": "/{n}", "response": {}}], journal={"max": 2})
    )
    async with aiohttp.ClientSession() as session:
        for n in range(4):
            async with session.get(f"{url}/{n}"):
                pass
    assert [(e.seq, e.path) for e in stub.journal] == [(3, "/2"), (4, "/3")]
    assert [e.path for e in select(stub.journal, method="get", path="/3")] == ["/3"]
    assert select(stub.journal, since=3) == [stub.journal[1]]


async def test_reset_forgets_the_journal_but_numbers_go_on(listen: Listen, start: Start) -> None:
    stub, url = await _serve(listen, start, http([{"path": "/", "response": {}}]))
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/"):
            pass
        stub.reset()
        assert len(stub.journal) == 0
        async with session.get(url + "/"):
            pass
    assert [e.seq for e in stub.journal] == [2]


async def test_a_tcp_entry_holds_what_came_what_went_and_which_rules(
    listen: Listen, start: Start
) -> None:
    spec = TcpService.model_validate(
        {
            "kind": "tcp",
            "journal": {"body_max": 6},
            "tcp": {
                "rules": [
                    {"expect": "HELLO", "send": "+HI\r\n"},
                    {"expect": "PING", "send": "+PONG\r\n"},
                ]
            },
        }
    )
    sock = listen("127.0.0.1")
    ctx = context("db", sock)
    stub = await start(spec, sock, ctx)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"PING")
        assert await read_exactly(reader, 7) == b"+PONG\r\n"
        writer.write(b"HELLO")
        assert await read_exactly(reader, 5) == b"+HI\r\n"
        writer.write_eof()
        assert await read_to_eof(reader) == b""
    await _until(lambda: len(stub.journal) == 1)
    [entry] = stub.journal
    assert entry.method == "TCP"
    assert entry.rules == (1, 0)
    assert (entry.body, entry.body_size, entry.truncated) == (b"PINGHE", 9, True)
    assert (entry.sent, entry.sent_size) == (b"+PONG\r", 12)
    assert "rules[1], rules[0]" in entry.summary
    assert Entry.from_json(entry.to_json()) == entry


def test_binary_bodies_survive_json() -> None:
    entry = Entry(time=1.0, client="127.0.0.1:1", method="POST", path="/", body=b"\xff\x00")
    assert entry.to_json()["body"] == {"base64": "/wA="}
    assert Entry.from_json(entry.to_json()).body == b"\xff\x00"


def test_a_journal_of_zero_keeps_nothing() -> None:
    journal = Journal("api", max=0)
    journal.add(Entry(time=1.0, client="", method="GET", path="/"))
    assert len(journal) == 0

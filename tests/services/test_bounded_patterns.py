"""Patterns searched in what clients send (bodies, JSON fields, TCP input, template filters)
are given up after SEARCH_BUDGET seconds, with an answer that says so, instead of stalling
every stub of the sandbox for as long as the search takes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from sandbox.services.bounded import SEARCH_BUDGET, Bounded, PatternTimeout
from sandbox.services.http import create_app
from tests.services.helpers import (
    DEADLINE,
    Listen,
    Start,
    connection,
    context,
    http_spec,
    tcp_spec,
)

# Searched from every position, `\w+@` runs to the one `@` again and again: about 3 s for
# 40 kB here, and 25 times that for this text, without the budget.
SLOW = r"\w+@\w+\.com"
HOSTILE = "a" * 100_000 + "@" + "b" * 100_000
WAIT = 20.0  # far below what the search alone would take, far above the budget


def test_a_search_in_time_finds_what_re_finds() -> None:
    pattern = Bounded(SLOW)
    found = pattern.search("mail ada@example.com now")
    assert found is not None
    assert found.group(0) == "ada@example.com"
    assert pattern.search("no address here") is None
    assert [m.group(0) for m in Bounded(r"\d").finditer("a1b2")] == ["1", "2"]
    assert Bounded(rb"PING").search(bytearray(b"..PING..")) is not None


@pytest.mark.parametrize("text", [HOSTILE, HOSTILE.encode()], ids=["str", "bytes"])
def test_a_search_out_of_time_is_given_up_and_named(text: str | bytes) -> None:
    pattern: Bounded[Any] = Bounded(SLOW if isinstance(text, str) else SLOW.encode())
    started = time.monotonic()
    with pytest.raises(PatternTimeout) as info:
        pattern.search(text)
    assert time.monotonic() - started < WAIT
    assert info.value.pattern == SLOW
    assert info.value.size == len(text)
    assert f"given up after {SEARCH_BUDGET:g} s" in str(info.value)
    assert "`^` or `\\b`" in str(info.value), "it says how to write it instead"


async def _post(client: Any, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with client.post(path, timeout=timeout, **kwargs) as answer:
        return answer.status, await answer.json(content_type=None)


@pytest.mark.parametrize(
    ("match", "send"),
    [
        ({"body": SLOW}, {"data": HOSTILE}),
        ({"json": {"mail": SLOW}}, {"json": {"mail": HOSTILE}}),
    ],
    ids=["body", "json field"],
)
async def test_a_body_pattern_out_of_time_answers_500_and_the_stub_goes_on(
    aiohttp_client: Any, match: dict[str, Any], send: dict[str, Any]
) -> None:
    lines: list[str] = []
    app = create_app(
        http_spec({"method": "POST", "path": "/", "match": match, "response": {"body": "ok"}}),
        context("web", log=lines.append),
    )
    client = await aiohttp_client(app)
    status, document = await _post(client, "/", **send)
    assert status == 500
    assert document["error"] == "a pattern of this stub took too long"
    assert f"/{SLOW}/ was given up" in document["detail"]
    assert any("was given up" in line for line in lines), lines
    small = {"data": "to ada@example.com"} if "body" in match else {"json": {"mail": "a@b.com"}}
    async with client.post("/", timeout=aiohttp.ClientTimeout(total=WAIT), **small) as again:
        assert again.status == 200
        assert await again.text() == "ok"


async def test_a_template_regex_out_of_time_fails_the_template(aiohttp_client: Any) -> None:
    in_jinja = SLOW.replace("\\", "\\\\")  # a Jinja string literal escapes backslashes
    body = "{{ body | regex('" + in_jinja + "', 0) }}"
    route = {"method": "POST", "path": "/", "response": {"body": body}}
    client = await aiohttp_client(create_app(http_spec(route), context("web")))
    status, document = await _post(client, "/", data=HOSTILE)
    assert status == 500
    assert "was given up" in str(document), document


async def test_a_tcp_expect_out_of_time_closes_that_connection_only(
    listen: Listen, start: Start
) -> None:
    lines: list[str] = []
    sock = listen("127.0.0.1")
    ctx = context("db", sock, log=lines.append)
    await start(
        tcp_spec(rules=[{"expect": SLOW, "send": "hit"}, {"expect": "PING", "send": "PONG"}]),
        sock,
        ctx,
    )
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(HOSTILE.encode()[-60_000:] + b"@" + b"c" * 4_000)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), WAIT) == b"", "the stub closes it"
    assert any("was given up" in line and "connection is closed" in line for line in lines)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"PING")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(4), DEADLINE) == b"PONG"

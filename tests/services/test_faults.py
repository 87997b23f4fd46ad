"""Faults, for HTTP and TCP, as a real client on a real socket sees them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from sandbox.services.context import ServiceContext, StubServer
from sandbox.services.faults import GARBAGE_MAX, GARBAGE_MIN, garbage
from sandbox.services.http import SHUTDOWN_GRACE
from tests.services.helpers import (
    Listen,
    Start,
    connection,
    context,
    http_spec,
    read_to_eof,
    tcp_spec,
)

REQUEST = b"GET /broken HTTP/1.1\r\nHost: stub\r\n\r\n"
STILL = 0.3  # how long a hanging connection must stay silent in these tests


def test_garbage_is_bounded_and_never_looks_like_an_answer() -> None:
    for _ in range(200):
        data = garbage()
        assert GARBAGE_MIN <= len(data) <= GARBAGE_MAX
        assert data[0] >= 0x80  # never "H" of "HTTP/", never printable


async def _http(
    listen: Listen, start: Start, fault: str, lines: list[str]
) -> tuple[StubServer, ServiceContext]:
    sock = listen("127.0.0.1")
    ctx = context("web", sock, log=lines.append)
    spec = http_spec({"path": "/broken", "fault": fault}, {"path": "/ok", "response": {}})
    return await start(spec, sock, ctx), ctx


async def test_http_reset_is_a_connection_reset(listen: Listen, start: Start) -> None:
    lines: list[str] = []
    stub, ctx = await _http(listen, start, "reset", lines)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(REQUEST)
        with pytest.raises(ConnectionResetError):
            await read_to_eof(reader)
    async with aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
            await session.get(ctx.url + "/broken")
    assert stub.journal[0].fault == "reset"
    assert stub.journal[0].status is None
    assert lines[-1].startswith("GET /broken - ")
    assert lines[-1].endswith("fault=reset")


@pytest.mark.parametrize("fault", ["close", "empty"])
async def test_http_close_and_empty_end_with_no_bytes(
    listen: Listen, start: Start, fault: str
) -> None:
    stub, ctx = await _http(listen, start, fault, [])
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(REQUEST)
        assert await read_to_eof(reader) == b""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(ctx.url + "/broken")
    # aiohttp retries a GET once on a dropped connection, so the stub may see it twice.
    assert len(stub.journal) >= 2
    assert {r.fault for r in stub.journal} == {fault}


async def test_http_garbage_is_not_http(listen: Listen, start: Start) -> None:
    _, ctx = await _http(listen, start, "garbage", [])
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(REQUEST)
        data = await read_to_eof(reader)
    assert GARBAGE_MIN <= len(data) <= GARBAGE_MAX
    assert not data.startswith(b"HTTP/")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get(ctx.url + "/broken")


async def test_http_hang_until_the_server_closes(listen: Listen, start: Start) -> None:
    stub, ctx = await _http(listen, start, "hang", [])
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(REQUEST)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(STILL):
                await reader.read(1)
        # Other connections are still served while one hangs.
        async with aiohttp.ClientSession() as session, session.get(ctx.url + "/ok") as resp:
            assert resp.status == 200
        began = time.monotonic()
        await stub.close()
        assert time.monotonic() - began < SHUTDOWN_GRACE  # released, not timed out
        assert await read_to_eof(reader) == b""
    assert [(r.path, r.fault) for r in stub.journal] == [("/ok", None), ("/broken", "hang")]


async def _tcp(listen: Listen, start: Start, **tcp: Any) -> tuple[StubServer, ServiceContext]:
    sock = listen("127.0.0.1")
    ctx = context("db", sock)
    return await start(tcp_spec(**tcp), sock, ctx), ctx


async def _silent_for(reader: asyncio.StreamReader, seconds: float = STILL) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await reader.read(1)


async def test_tcp_reset_on_connect(listen: Listen, start: Start) -> None:
    stub, ctx = await _tcp(listen, start, fault="reset", banner="never sent")
    async with connection(ctx.address, ctx.port) as (reader, _):
        with pytest.raises(ConnectionResetError):
            await read_to_eof(reader)
    assert stub.journal[0].fault == "reset"


async def test_tcp_empty_closes_right_after_accept(listen: Listen, start: Start) -> None:
    _, ctx = await _tcp(listen, start, fault="empty", banner="never sent")
    async with connection(ctx.address, ctx.port) as (reader, _):
        assert await read_to_eof(reader) == b""  # without the client sending anything


async def test_tcp_close_waits_for_the_client_then_closes(listen: Listen, start: Start) -> None:
    stub, ctx = await _tcp(listen, start, fault="close", banner="never sent")
    async with connection(ctx.address, ctx.port) as (reader, writer):
        await _silent_for(reader)  # unlike `empty`, the connection stays until the client speaks
        writer.write(b"hello")
        assert await read_to_eof(reader) == b""
    assert stub.journal[0].body_size == 5


async def test_tcp_garbage_on_connect(listen: Listen, start: Start) -> None:
    _, ctx = await _tcp(listen, start, fault="garbage")
    async with connection(ctx.address, ctx.port) as (reader, _):
        data = await read_to_eof(reader)
    assert GARBAGE_MIN <= len(data) <= GARBAGE_MAX


async def test_tcp_hang_until_the_server_closes(listen: Listen, start: Start) -> None:
    stub, ctx = await _tcp(listen, start, fault="hang", banner="never sent")
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"PING\r\n")
        await _silent_for(reader)
        await stub.close()
        assert await read_to_eof(reader) == b""
    assert stub.journal[0].fault == "hang"
    assert stub.journal[0].body_size == 6


@pytest.mark.parametrize("fault", ["close", "empty", "garbage"])
async def test_tcp_rule_faults_that_end_with_eof(listen: Listen, start: Start, fault: str) -> None:
    rules = [{"expect": "BOOM", "fault": fault}, {"expect": "PING", "send": "+PONG\r\n"}]
    stub, ctx = await _tcp(listen, start, rules=rules)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"PING")
        assert await reader.readexactly(7) == b"+PONG\r\n"
        writer.write(b"BOOM")
        data = await read_to_eof(reader)
    if fault == "garbage":
        assert GARBAGE_MIN <= len(data) <= GARBAGE_MAX
    else:
        assert data == b""
    assert stub.journal[0].fault == fault


async def test_tcp_rule_reset(listen: Listen, start: Start) -> None:
    _, ctx = await _tcp(listen, start, rules=[{"expect": "BOOM", "fault": "reset"}])
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"BOOM")
        with pytest.raises(ConnectionResetError):
            await read_to_eof(reader)


async def test_tcp_rule_hang(listen: Listen, start: Start) -> None:
    rules = [{"expect": "BOOM", "fault": "hang"}, {"expect": "PING", "send": "+PONG\r\n"}]
    stub, ctx = await _tcp(listen, start, rules=rules)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"BOOM")
        await _silent_for(reader)
        writer.write(b"PING")  # a hanging connection answers nothing, not even known requests
        await _silent_for(reader, 0.1)
        await stub.close()
        assert await read_to_eof(reader) == b""

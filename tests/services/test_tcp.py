"""TCP stubs: banner, rules, defaults, delays, real protocol bytes, many clients, close."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandbox.errors import StubConfigError
from sandbox.profile.models import TcpService
from sandbox.services.tcp import serve_tcp, to_bytes
from tests.helpers import until as _until
from tests.services.helpers import (
    DEADLINE,
    Listen,
    Start,
    connection,
    context,
    ipv6_available,
    read_exactly,
    read_to_eof,
    tcp_spec,
)

PING_PONG = [{"expect": "PING", "send": "+PONG\r\n"}]


async def _stub(listen: Listen, start: Start, **tcp: object) -> tuple[str, int]:
    sock = listen("127.0.0.1")
    ctx = context("db", sock)
    await start(tcp_spec(**tcp), sock, ctx)
    return ctx.address, ctx.port


async def test_banner_is_sent_on_connect(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, banner="ready\r\n\x00")
    async with connection(host, port) as (reader, _):
        assert await read_exactly(reader, 8) == b"ready\r\n\x00"


async def test_banner_hex(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, banner_hex="00ff0d0a")
    async with connection(host, port) as (reader, _):
        assert await read_exactly(reader, 4) == b"\x00\xff\r\n"


async def test_resp_ping_from_a_redis_client_gets_pong(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, rules=PING_PONG, default="silent")
    async with connection(host, port) as (reader, writer):
        for _ in range(3):  # what redis-py / redis-cli send for PING, once per command
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            assert await read_exactly(reader, 7) == b"+PONG\r\n"


async def test_pipelined_requests_in_one_packet_are_each_answered(
    listen: Listen, start: Start
) -> None:
    host, port = await _stub(listen, start, rules=PING_PONG, default="silent")
    async with connection(host, port) as (reader, writer):
        writer.write(b"PING\r\nPING\r\nPING\r\n")
        assert await read_exactly(reader, 21) == b"+PONG\r\n" * 3


async def test_rules_are_tried_in_order_and_then_close_closes(listen: Listen, start: Start) -> None:
    rules = [
        {"expect": "QUIT", "send": "bye\r\n", "then": "close"},
        {"expect": "Q", "send": "never\r\n"},
        {"expect": "HELLO (\\w+)", "send_hex": "6869"},
    ]
    host, port = await _stub(listen, start, rules=rules, default="silent")
    async with connection(host, port) as (reader, writer):
        writer.write(b"HELLO you\n")
        assert await read_exactly(reader, 2) == b"hi"
        writer.write(b"QUIT\r\n")
        assert await read_to_eof(reader) == b"bye\r\n"


async def test_a_request_split_across_packets_matches_once_complete(
    listen: Listen, start: Start
) -> None:
    host, port = await _stub(
        listen, start, rules=[{"expect": "PING\n", "send": "ok"}], default="silent"
    )
    async with connection(host, port) as (reader, writer):
        writer.write(b"PI")
        await writer.drain()
        writer.write(b"NG\n")
        assert await read_exactly(reader, 2) == b"ok"


async def test_default_echo_sends_back_what_no_rule_matched(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, rules=PING_PONG)
    async with connection(host, port) as (reader, writer):
        writer.write(b"hello")
        assert await read_exactly(reader, 5) == b"hello"
        writer.write(b"PING")
        assert await read_exactly(reader, 7) == b"+PONG\r\n"


async def test_default_silent_answers_nothing(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, rules=PING_PONG, default="silent")
    async with connection(host, port) as (reader, writer):
        writer.write(b"unknown\r\n")
        # The PONG proves the stub read "unknown" and said nothing about it.
        writer.write(b"PING")
        assert await read_exactly(reader, 7) == b"+PONG\r\n"


async def test_default_close_closes_on_unmatched_bytes(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, rules=PING_PONG, default="close")
    async with connection(host, port) as (reader, writer):
        writer.write(b"PING")
        assert await read_exactly(reader, 7) == b"+PONG\r\n"
        writer.write(b"what")
        assert await read_to_eof(reader) == b""


async def test_rule_delay_holds_the_answer(listen: Listen, start: Start) -> None:
    rules = [{"expect": "x", "send": "y", "delay": "150ms"}]
    host, port = await _stub(listen, start, rules=rules)
    async with connection(host, port) as (reader, writer):
        began = time.monotonic()
        writer.write(b"x")
        assert await read_exactly(reader, 1) == b"y"
        assert time.monotonic() - began >= 0.15


async def test_an_empty_match_answers_once_per_arrival(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, rules=[{"expect": "z*", "send": "!"}])
    async with connection(host, port) as (reader, writer):
        writer.write(b"abc")
        assert await read_exactly(reader, 1) == b"!"
        writer.write(b"PING")  # would be echoed if the stub had looped or fallen to echo
        assert await read_exactly(reader, 1) == b"!"


async def test_two_hundred_concurrent_clients(listen: Listen, start: Start) -> None:
    host, port = await _stub(listen, start, banner="hi\n", rules=PING_PONG)

    async def one(n: int) -> bytes:
        async with connection(host, port) as (reader, writer):
            assert await read_exactly(reader, 3) == b"hi\n"
            writer.write(f"PING {n}".encode())
            return await read_exactly(reader, 7)

    async with asyncio.timeout(DEADLINE * 2):
        answers = await asyncio.gather(*(one(n) for n in range(200)))
    assert answers == [b"+PONG\r\n"] * 200


@pytest.mark.skipif(not ipv6_available(), reason="::1 cannot be bound on this machine")
async def test_tcp_stub_on_ipv6_loopback(listen: Listen, start: Start) -> None:
    sock = listen("::1")
    ctx = context("db", sock)
    await start(tcp_spec(banner="v6\n"), sock, ctx)
    async with connection("::1", ctx.port) as (reader, _):
        assert await read_exactly(reader, 3) == b"v6\n"


async def test_connections_are_logged_and_recorded(listen: Listen) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("db", sock, log=lines.append)
    spec = TcpService.model_validate(
        {"kind": "tcp", "journal": {"max": 2}, "tcp": {"rules": PING_PONG}}
    )
    stub = await serve_tcp(spec, sock, ctx)
    try:
        for _ in range(3):
            async with connection(ctx.address, ctx.port) as (reader, writer):
                writer.write(b"PING")
                await read_exactly(reader, 7)
                writer.write_eof()
                assert await read_to_eof(reader) == b""
        await _until(lambda: len(stub.journal) == 2 and stub.journal[-1].sent_size == 7)
    finally:
        await stub.close()
    record = stub.journal[-1]
    assert (record.method, record.status, record.body_size, record.sent_size) == ("TCP", None, 4, 7)
    assert record.client.startswith("127.0.0.1:")
    assert any(line.endswith("connected") for line in lines)
    assert any("-> 4B PING" in line for line in lines)
    assert any("<- 7B +PONG\\r\\n" in line for line in lines)
    assert any("closed after" in line and "(in 4B, out 7B)" in line for line in lines)


async def test_close_drops_open_connections_and_the_socket(listen: Listen) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("db", sock, log=lines.append)
    stub = await serve_tcp(tcp_spec(default="silent"), sock, ctx)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"x")
        await _until(lambda: any(line.endswith("-> 1B x") for line in lines))
        began = time.monotonic()
        await stub.close()
        assert time.monotonic() - began < 1.0  # dropped at once, not after a deadline
        assert await read_to_eof(reader) == b""
    await stub.close()  # idempotent
    assert sock.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(ctx.address, ctx.port)


def test_text_is_one_byte_per_character_up_to_ff() -> None:
    assert to_bytes("\r\n\x00\xff") == b"\r\n\x00\xff"
    assert to_bytes("✓") == "✓".encode()


async def test_send_is_a_template_over_what_the_rule_matched(listen: Listen, start: Start) -> None:
    rules = [
        {"expect": r"GET (?P<key>\w+)\r\n", "send": "VALUE {{ match.key }} {{ match[1] }}\r\n"},
        {"expect": r"ECHO (\w+) (\w+)\r\n", "send": "{{ match[2] }} {{ match[1] }}\r\n"},
        {"expect": r"BAD\r\n", "send": "{{ match.nope }}"},
        {"expect": r"PING", "send": "+PONG\r\n"},
    ]
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("db", sock, log=lines.append)
    await start(tcp_spec(rules=rules, default="silent"), sock, ctx)
    async with connection(ctx.address, ctx.port) as (reader, writer):
        writer.write(b"GET user42\r\n")
        assert (
            await read_exactly(reader, len(b"VALUE user42 user42\r\n"))
            == b"VALUE user42 user42\r\n"
        )
        writer.write(b"ECHO a b\r\nBAD\r\nPING")
        assert await read_exactly(reader, len(b"b a\r\n+PONG\r\n")) == b"b a\r\n+PONG\r\n"
    assert any("template failed" in line and "nope" in line for line in lines), lines


async def test_a_send_template_with_bad_syntax_stops_the_start(
    listen: Listen, start: Start
) -> None:
    sock = listen("127.0.0.1")
    with pytest.raises(StubConfigError, match=r"rules\[0\]\.send"):
        await start(
            tcp_spec(rules=[{"expect": "x", "send": "{{ match[1 }}"}]), sock, context("db", sock)
        )

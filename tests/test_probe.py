"""Tests for the probe core, against real sockets and tiny asyncio servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import ResolveError
from sandbox.probe import (
    ProbeResult,
    ProbeState,
    probe_all,
    probe_http,
    probe_send_expect,
    probe_tcp,
    resolve,
    wait_ready,
)
from sandbox.probe.endpoint import _classify
from sandbox.probe.resolve import hosts_addresses
from tests.helpers import held

V4 = "127.0.0.61"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@pytest.fixture(params=[V4, "::1"])
def address(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    with held(value):
        pass  # skips where the family cannot bind
    return value


@contextlib.asynccontextmanager
async def serve(handler: Handler, address: str = V4) -> AsyncIterator[int]:
    """An asyncio server on address:0 running `handler` per connection; waits for every
    handler on the way out so no transport outlives the test."""
    tasks: set[asyncio.Task[object]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the probe hung up first, which probes do
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(run, address, 0)
    except OSError as exc:
        pytest.skip(f"cannot listen on {address} here: {exc}")
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()


def responder(response: bytes, *, close: bool = False, seen: list[bytes] | None = None) -> Handler:
    """Read one request head, answer `response`, then close or wait for the client to go."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        writer.write(response)
        await writer.drain()
        if not close:
            await reader.read()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never say a word, until the client hangs up."""
    await reader.read()


# --- probe_tcp -------------------------------------------------------------------------------


async def test_tcp_open(address: str) -> None:
    with held(address) as port:
        result = await probe_tcp(address, port)
    assert result.state is ProbeState.OPEN
    assert result.ok
    assert (result.address, result.port, result.target) == (address, port, hostport(address, port))
    assert result.latency_ms is not None
    assert result.latency_ms > 0
    assert result.detail.startswith(f"connected to {hostport(address, port)} in ")


async def test_tcp_refused_by_a_bound_socket_that_does_not_listen(address: str) -> None:
    with held(address, listen=False) as port:
        result = await probe_tcp(address, port, target="db")
    assert result.state is ProbeState.REFUSED
    assert not result.ok
    assert result.target == "db"
    assert result.latency_ms is None
    assert result.detail == f"connection refused: nothing listens on {hostport(address, port)}"


async def test_tcp_to_the_broadcast_address_is_refused_before_connecting() -> None:
    # The loopback rule refuses it: connect() would fail with ENETUNREACH (FIELD-NOTES 1).
    with pytest.raises(ValueError, match="broadcast address"):
        await probe_tcp("127.255.255.255", 9)


@pytest.mark.parametrize(
    ("address", "port", "deadline"),
    [
        ("localhost", 80, 1.0),
        ("10.0.0.1", 80, 1.0),
        ("::ffff:127.0.0.1", 80, 1.0),
        ("127.0.0.1", 0, 1.0),
        ("127.0.0.1", 65536, 1.0),
        ("127.0.0.1", 80, 0.0),
    ],
)
async def test_tcp_refuses_bad_arguments(address: str, port: int, deadline: float) -> None:
    with pytest.raises(ValueError, match=r"\."):
        await probe_tcp(address, port, timeout=deadline)


def test_to_json_carries_the_excerpt_only_when_there_is_one() -> None:
    bare = ProbeResult("t", "127.0.0.1", 80, ProbeState.REFUSED, None, detail="d")
    assert set(bare.to_json()) == {
        "target", "address", "port", "state", "ok", "latency_ms", "http_status", "detail"
    }  # fmt: skip
    assert bare.to_json()["state"] == "refused"
    http = ProbeResult("t", "127.0.0.1", 80, ProbeState.OPEN, 1.23456, 200, "hi", "d")
    assert http.to_json()["body_excerpt"] == "hi"
    assert http.to_json()["latency_ms"] == 1.235
    assert http.to_json()["ok"] is True


@pytest.mark.parametrize(
    ("exc", "state", "text"),
    [
        (TimeoutError(), ProbeState.TIMEOUT, "no answer within 2.0 s: 127.0.0.9:80 did not"),
        (ConnectionRefusedError(), ProbeState.REFUSED, "nothing listens on 127.0.0.9:80"),
        (socket.gaierror(socket.EAI_NONAME, "Name unknown"), ProbeState.UNRESOLVED, "Name unknown"),
        (OSError(errno.EHOSTUNREACH, "No route"), ProbeState.UNREACHABLE, "no route to 127.0.0.9"),
        (OSError(errno.EPERM, "Not permitted"), ProbeState.ERROR, "Not permitted"),
    ],
)
def test_failures_map_to_states(exc: BaseException, state: ProbeState, text: str) -> None:
    # The mapping itself, for the errors a loopback test cannot provoke without the network.
    got_state, detail = _classify(exc, "127.0.0.9", 80, 2.0)
    assert got_state is state
    assert text in detail


# --- resolve ---------------------------------------------------------------------------------


async def test_resolve_localhost_follows_the_system_order() -> None:
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    expected = list(dict.fromkeys(str(info[4][0]) for info in infos))
    assert await resolve("localhost", 80) == expected


async def test_resolve_returns_a_literal_in_canonical_form() -> None:
    assert await resolve("0:0::1", 80) == ["::1"]
    assert await resolve("127.0.0.5", 80) == ["127.0.0.5"]


@pytest.mark.parametrize(
    "name", ["bad..name", "example.com", "web", "db.sandbox.test", "LOCALHOST."]
)
async def test_resolve_refuses_every_name_but_localhost_without_asking(name: str) -> None:
    with pytest.raises(ResolveError) as caught:
        await resolve(name, 80)
    assert caught.value.state == ProbeState.UNRESOLVED
    assert isinstance(caught.value, ValueError)
    assert "looks up no name but localhost" in caught.value.message


async def test_resolve_localhost_reads_the_hosts_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "# a comment naming localhost\n"
        "127.0.0.1   localhost localhost.localdomain\n"
        "10.0.0.7    printer\n"
        "::1         ip6-localhost LocalHost  # trailing comment\n"
        "127.0.1.1   box\n"
        "127.0.0.1   localhost\n"
    )
    assert await resolve("localhost", 80, hosts=hosts) == ["::1", "127.0.0.1"]
    assert hosts_addresses("printer", hosts) == ["10.0.0.7"]


async def test_resolve_localhost_missing_from_the_hosts_file_says_so(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.1.1 box\n")
    with pytest.raises(ResolveError, match="localhost is not in"):
        await resolve("localhost", 80, hosts=hosts)


def test_a_fifo_as_hosts_file_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "hosts"
    os.mkfifo(fifo)
    assert hosts_addresses("localhost", fifo) == []


# --- probe_http ------------------------------------------------------------------------------


async def test_http_reads_by_content_length_on_a_connection_left_open() -> None:
    seen: list[bytes] = []
    handler = responder(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", seen=seen)
    async with serve(handler) as port:
        start = time.monotonic()
        result = await probe_http(V4, port, "/health", timeout=5.0)
    assert time.monotonic() - start < 2.0  # did not wait for a close that never comes
    assert result.ok
    assert (result.http_status, result.body_excerpt) == (200, "hello")
    assert result.target == f"http://{V4}:{port}/health"
    assert result.detail.startswith(f"HTTP 200 OK from {V4}:{port} in ")
    assert "(" not in result.detail
    assert result.latency_ms is not None
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "GET /health HTTP/1.1"
    assert f"Host: {V4}:{port}" in lines
    assert "Connection: close" in lines


async def test_http_reads_until_close_and_keeps_a_200_char_excerpt() -> None:
    handler = responder(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 1000, close=True)
    async with serve(handler) as port:
        result = await probe_http(V4, port)
    assert result.ok
    assert result.body_excerpt == "x" * 200


async def test_http_decodes_chunked_bodies() -> None:
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    handler = responder(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    async with serve(handler) as port:
        result = await probe_http(V4, port, timeout=5.0)
    assert result.ok
    assert result.body_excerpt == "hello world"


async def test_http_skips_an_interim_response() -> None:
    response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    async with serve(responder(response)) as port:
        result = await probe_http(V4, port, timeout=5.0)
    assert result.http_status == 204
    assert result.ok


async def test_http_status_mismatch_stays_open_but_fails() -> None:
    response = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
    async with serve(responder(response)) as port:
        result = await probe_http(V4, port, expect_status=200)
        matching = await probe_http(V4, port, expect_status=503)
    assert result.state is ProbeState.OPEN
    assert result.expectation_failed
    assert not result.ok
    assert result.http_status == 503
    assert result.detail == f"expected status 200, got 503 Service Unavailable from {V4}:{port}"
    assert matching.ok


async def test_http_server_that_never_answers_times_out_within_the_deadline() -> None:
    async with serve(silent) as port:
        start = time.monotonic()
        result = await probe_http(V4, port, timeout=0.2)
        elapsed = time.monotonic() - start
    assert result.state is ProbeState.TIMEOUT
    assert 0.2 <= elapsed < 2.0
    assert result.detail == f"connected to {V4}:{port}, but no HTTP response within 0.2 s"


async def test_http_body_that_stalls_still_reports_the_status() -> None:
    handler = responder(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
    async with serve(handler) as port:
        result = await probe_http(V4, port, timeout=0.3)
    assert result.ok
    assert result.body_excerpt == "hello"
    assert result.detail.endswith("(the body did not finish within 0.3 s)")


async def test_http_head_does_not_wait_for_a_body() -> None:
    seen: list[bytes] = []
    handler = responder(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", seen=seen)
    async with serve(handler) as port:
        result = await probe_http(V4, port, method="HEAD", timeout=5.0)
    assert result.ok
    assert "(" not in result.detail
    assert seen[0].startswith(b"HEAD / HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("response", "text"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "answered, but not with HTTP: b'SSH-2.0"),
        (b"", "closed the connection without an HTTP response"),
    ],
)
async def test_http_answer_that_is_not_http_fails(response: bytes, text: str) -> None:
    async with serve(responder(response, close=True)) as port:
        result = await probe_http(V4, port)
    assert result.state is ProbeState.OPEN
    assert result.expectation_failed
    assert result.detail.startswith(f"{V4}:{port} {text}")


async def test_http_over_ipv6_brackets_the_host_header() -> None:
    seen: list[bytes] = []
    handler = responder(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6", seen=seen)
    async with serve(handler, "::1") as port:
        result = await probe_http("::1", port)
        named = await probe_http("::1", port, scheme_host=f"localhost:{port}")
    assert result.ok
    assert named.ok
    assert result.target == f"http://[::1]:{port}/"
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in seen[0]
    assert f"\r\nHost: localhost:{port}\r\n".encode() in seen[1]


async def test_http_refused() -> None:
    with held(V4, listen=False) as port:
        result = await probe_http(V4, port)
    assert result.state is ProbeState.REFUSED


@pytest.mark.parametrize(
    ("path", "method"), [("health", "GET"), ("/a b", "GET"), ("/\r\nX: y", "GET"), ("/", "G T")]
)
async def test_http_refuses_a_request_it_cannot_write(path: str, method: str) -> None:
    with pytest.raises(ValueError, match=r"\."):
        await probe_http(V4, 8080, path, method=method)


# --- probe_send_expect -----------------------------------------------------------------------


async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HELLO v1\r\n")
    if await reader.readline() == b"PING\r\n":
        writer.write(b"+PONG\r\n")
    else:
        writer.write(b"-ERR unknown\r\n")
    await writer.drain()


async def test_send_expect_banner_then_ping_pong() -> None:
    async with serve(pong) as port:
        result = await probe_send_expect(
            V4, port, banner=b"HELLO", send=b"PING\r\n", expect=re.compile(rb"\+PONG\r\n")
        )
    assert result.ok
    assert result.body_excerpt == "HELLO v1\r\n+PONG\r\n"
    assert result.detail.startswith(f"connected to {V4}:{port} and sent 6 bytes, then a match")


async def test_send_expect_closed_before_the_match_fails() -> None:
    async with serve(pong) as port:
        result = await probe_send_expect(V4, port, send=b"PONG\r\n", expect=b"+PONG")
    assert result.state is ProbeState.OPEN
    assert result.expectation_failed
    assert "closed the connection without b'+PONG'" in result.detail
    assert "-ERR unknown" in result.detail


async def test_send_expect_silence_times_out() -> None:
    async with serve(silent) as port:
        start = time.monotonic()
        result = await probe_send_expect(V4, port, send=b"PING\r\n", expect=b"PONG", timeout=0.2)
    assert time.monotonic() - start < 2.0
    assert result.state is ProbeState.TIMEOUT
    assert result.detail == (
        f"connected to {V4}:{port} and sent 6 bytes, but no b'PONG' within 0.2 s"
    )


async def test_send_without_expectation_is_ok_once_sent() -> None:
    async with serve(silent) as port:
        result = await probe_send_expect(V4, port, send=b"hi", expect=None)
    assert result.ok


# --- probe_all -------------------------------------------------------------------------------


async def echo_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    path = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[1]
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
    await writer.drain()


async def test_probe_all_bounds_concurrency_and_keeps_order() -> None:
    in_flight = peak = 0

    async def counted(port: int, index: int) -> ProbeResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await probe_http(V4, port, f"/{index}", timeout=10.0)
        finally:
            in_flight -= 1

    async with serve(echo_path) as port:
        results = await probe_all((counted(port, i) for i in range(200)), limit=10)
    assert peak == 10
    assert [r.body_excerpt for r in results] == [f"/{i}" for i in range(200)]


async def test_probe_all_passes_on_a_raising_probe_and_leaves_nothing_pending() -> None:
    async def broken() -> ProbeResult:
        raise RuntimeError("a bug in a probe")

    with held(V4, listen=False) as port:
        probes = [probe_tcp(V4, port) for _ in range(5)]
        with pytest.raises(RuntimeError, match="a bug"):
            await probe_all([broken(), *probes], limit=1)


async def test_probe_all_refuses_a_zero_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await probe_all([], limit=0)


# --- wait_ready ------------------------------------------------------------------------------


async def test_wait_ready_sees_a_listener_that_appears_later() -> None:
    seen: list[ProbeResult] = []
    third_refusal = asyncio.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((V4, 0))  # held, not listening: refused until the other task listens
        port = sock.getsockname()[1]

        async def probe() -> ProbeResult:
            seen.append(await probe_tcp(V4, port))
            if len(seen) == 3:
                third_refusal.set()
            return seen[-1]

        async def start_listening() -> None:
            await third_refusal.wait()
            sock.listen()

        starter = asyncio.create_task(start_listening())
        result = await wait_ready(probe, timeout=10.0)
        await starter
    finally:
        sock.close()
    assert result.ok
    assert [r.state for r in seen] == [ProbeState.REFUSED] * 3 + [ProbeState.OPEN]


async def test_wait_ready_returns_the_last_result_at_the_deadline() -> None:
    now = 0.0
    calls = 0

    def clock() -> float:
        return now

    with held(V4, listen=False) as port:

        async def probe() -> ProbeResult:
            nonlocal now, calls
            calls += 1
            now += 1.0  # each probe "takes" a second of the injected clock
            return await probe_tcp(V4, port)

        result = await wait_ready(probe, timeout=5.0, clock=clock)
    assert calls == 5
    assert result.state is ProbeState.REFUSED
    assert result.detail == (
        f"not ready within 5.0 s: last probe: connection refused: nothing listens on {V4}:{port}"
    )


async def test_wait_ready_backs_off() -> None:
    calls = 0
    with held(V4, listen=False) as port:

        async def probe() -> ProbeResult:
            nonlocal calls
            calls += 1
            return await probe_tcp(V4, port)

        result = await wait_ready(probe, timeout=0.3, interval=0.005, max_interval=0.1)
    # Without backoff, a 5 ms interval would probe about 60 times in 0.3 s.
    assert 2 <= calls <= 12
    assert result.detail.startswith("not ready within 0.3 s: last probe: connection refused")


async def test_wait_ready_gives_up_at_once() -> None:
    calls = 0
    with held(V4, listen=False) as port:

        async def probe() -> ProbeResult:
            nonlocal calls
            calls += 1
            return await probe_tcp(V4, port)

        def give_up() -> str | None:
            return "the process exited with code 1" if calls >= 2 else None

        start = time.monotonic()
        result = await wait_ready(probe, timeout=30.0, give_up=give_up)
    assert time.monotonic() - start < 5.0
    assert calls == 2
    assert result.state is ProbeState.REFUSED
    assert result.detail.startswith("the process exited with code 1; last probe: connection")


async def test_wait_ready_cuts_a_slow_probe_at_its_own_deadline() -> None:
    calls = 0
    async with serve(silent) as port:

        async def probe() -> ProbeResult:
            nonlocal calls
            calls += 1  # a quick first probe, then one far slower than the wait's deadline
            return await probe_http(V4, port, timeout=0.05 if calls == 1 else 30.0)

        start = time.monotonic()
        result = await wait_ready(probe, timeout=0.4)
        elapsed = time.monotonic() - start
    assert elapsed < 5.0
    assert calls == 2
    assert result.state is ProbeState.TIMEOUT
    assert result.target == f"http://{V4}:{port}/"  # the cut probe is named after the one before
    cut = "not ready within 0.4 s: last probe: the probe did not finish in time; the one before: "
    assert result.detail.startswith(cut), result.detail
    assert len(result.detail) > len(cut), "what the first, whole probe found is said too"


async def test_wait_ready_never_raises() -> None:
    async def broken() -> ProbeResult:
        raise RuntimeError("a bug in a probe")

    result = await wait_ready(broken, timeout=1.0)
    assert result.state is ProbeState.ERROR
    assert result.detail == "the probe failed: RuntimeError: a bug in a probe"


def test_connect_now_proves_a_listener_of_this_process_without_waiting(spare_loopback: Any) -> None:
    from sandbox.net.sockets import bind_listener
    from sandbox.probe.tcp import connect_now

    listening, nothing = (str(a) for a in spare_loopback(2))
    with bind_listener(listening, 0) as listener:
        port = listener.getsockname()[1]
        result = connect_now(listening, port)
        assert result is not None
        assert result.state is ProbeState.OPEN
        assert (result.address, result.port) == (listening, port)
        assert result.detail.startswith(f"connected to {listening}:{port} in ")
        conn, _ = listener.accept()  # it did connect: the connection waits in the queue
        conn.close()
    assert connect_now(nothing, port) is None  # refused: the caller probes over time instead
    with pytest.raises(ValueError, match="not a loopback address"):
        connect_now("192.0.2.1", port)  # never anything but loopback


def test_prove_listener_accepts_its_own_connect_and_hands_back_the_others(
    spare_loopback: Any,
) -> None:
    from sandbox.net.sockets import bind_listener
    from sandbox.probe.tcp import prove_listener

    address = str(spare_loopback(1)[0])
    with bind_listener(address, 0) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection((address, port), timeout=2) as early:
            result, others = prove_listener(listener)
            assert result is not None
            assert result.state is ProbeState.OPEN
            assert (result.address, result.port) == (address, port)
            # The client that came first was accepted on the way and is handed back, open:
            # what it sends arrives, and what is sent to it arrives too.
            assert [o.getpeername() for o in others] == [early.getsockname()]
            (other,) = others
            with other:
                early.sendall(b"ping")
                assert other.recv(4) == b"ping"
                other.sendall(b"pong")
                assert early.recv(4) == b"pong"
        # Nothing of the proof is left in the queue for a server to accept.
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_prove_listener_of_a_socket_that_does_not_listen_gives_none(spare_loopback: Any) -> None:
    from sandbox.probe.tcp import prove_listener

    with socket.socket() as bound:
        bound.bind((str(spare_loopback(1)[0]), 0))
        bound.setblocking(False)
        assert prove_listener(bound) == (None, [])

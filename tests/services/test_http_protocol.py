"""HTTP stubs at the socket level: half-closing clients, pipelined requests, cut bodies."""

from __future__ import annotations

import asyncio
import socket

from sandbox.profile.models import HttpService
from tests.services.helpers import DEADLINE, Listen, Start, context, http_spec


def _exchange(host: str, port: int, request: bytes) -> bytes:
    """Send `request`, shut the writing side (like `nc -N`), read until the server closes."""
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def _serve(listen: Listen, start: Start, spec: HttpService) -> tuple[str, int]:
    sock = listen()
    await start(spec, sock, context("web", sock))
    host, port = sock.getsockname()[:2]
    return host, port


async def test_a_half_closing_client_gets_the_answer_20_times_of_20(
    listen: Listen, start: Start
) -> None:
    host, port = await _serve(listen, start, http_spec({"path": "/", "response": {"body": "hi"}}))
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = [await asyncio.to_thread(_exchange, host, port, request) for _ in range(20)]
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 20
    assert all(a.endswith(b"\r\n\r\nhi") for a in answers), answers


async def test_a_half_closing_client_with_a_body_and_a_delay_gets_the_answer(
    listen: Listen, start: Start
) -> None:
    spec = http_spec({"path": "/echo", "response": {"body": "got {{ body }}", "delay": "50ms"}})
    host, port = await _serve(listen, start, spec)
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    answer = await asyncio.to_thread(_exchange, host, port, request)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"got hello")


async def test_pipelined_requests_before_a_half_close_are_all_answered(
    listen: Listen, start: Start
) -> None:
    spec = http_spec({"path": "/{n}", "response": {"body": "n={{ path.n }};"}})
    host, port = await _serve(listen, start, spec)
    request = b"".join(f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in range(3))
    answer = await asyncio.to_thread(_exchange, host, port, request)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert [part for part in (b"n=0;", b"n=1;", b"n=2;") if part in answer] == [
        b"n=0;",
        b"n=1;",
        b"n=2;",
    ]


async def test_a_body_cut_short_by_a_half_close_is_answered_not_hung(
    listen: Listen, start: Start
) -> None:
    host, port = await _serve(listen, start, http_spec({"path": "/", "response": {"body": "x"}}))
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort"
    answer = await asyncio.to_thread(_exchange, host, port, request)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request"), answer
    assert b"received 5 of 100 bytes" in answer


async def test_an_idle_keep_alive_connection_closes_on_half_close(
    listen: Listen, start: Start
) -> None:
    host, port = await _serve(listen, start, http_spec({"path": "/", "response": {"body": "x"}}))

    def idle() -> bytes:
        with socket.create_connection((host, port), timeout=DEADLINE) as sock:
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(100)

    assert await asyncio.to_thread(idle) == b""

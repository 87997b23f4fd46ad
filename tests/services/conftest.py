"""Fixtures for stub tests: held listening sockets, and stubs closed after each test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from sandbox.profile.models import HttpService, TcpService
from sandbox.services import serve
from sandbox.services.context import ServiceContext, StubServer
from tests.services.helpers import Listen, Start


@pytest.fixture
def listen() -> Iterator[Listen]:
    """Factory of bound, listening, non-blocking sockets on port 0; all closed afterwards
    (closing one the stub already closed is harmless)."""
    held: list[socket.socket] = []

    def make(address: str = "127.0.0.1", *, listening: bool = True) -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        held.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, 0))
        if listening:
            sock.listen(128)
        sock.setblocking(False)
        return sock

    yield make
    for sock in held:
        sock.close()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Factory: serve a spec on a socket; every stub is closed afterwards, newest first."""
    stubs: list[StubServer] = []

    async def go(
        spec: HttpService | TcpService, sock: socket.socket, ctx: ServiceContext
    ) -> StubServer:
        stub = await serve(spec, sock, ctx)
        stubs.append(stub)
        return stub

    yield go
    for stub in reversed(stubs):
        await stub.close()

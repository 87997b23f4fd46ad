"""Helpers for stub tests: specs, contexts, raw client connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sandbox.profile.models import HttpService, TcpService
from sandbox.services.context import Peer, ServiceContext, StubServer

Listen = Callable[..., socket.socket]
Start = Callable[..., Awaitable[StubServer]]


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def http_spec(*routes: dict[str, Any]) -> HttpService:
    return HttpService.model_validate({"kind": "http", "routes": list(routes)})


def tcp_spec(**tcp: Any) -> TcpService:
    return TcpService.model_validate({"kind": "tcp", "tcp": tcp})


def context(
    name: str,
    sock: socket.socket | None = None,
    *,
    peers: Mapping[str, Peer] | None = None,
    profile_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> ServiceContext:
    """A context for `name`; address and port come from `sock` when one is given."""
    host, port = sock.getsockname()[:2] if sock is not None else ("127.0.0.1", 8080)
    me = Peer(name=name, address=host, port=port, url=url_of(host, port))
    return ServiceContext(
        name=name,
        address=host,
        port=port,
        url=me.url,
        profile_dir=profile_dir,
        peers={name: me, **(peers or {})},
        log=log or (lambda line: None),
    )


def peer_of(name: str, sock: socket.socket) -> Peer:
    host, port = sock.getsockname()[:2]
    return Peer(name=name, address=host, port=port, url=url_of(host, port))


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def connection(
    host: str, port: int
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw client connection, closed on exit whatever state the server left it in."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


DEADLINE = 5.0  # every wait in these tests is bounded; this one only matters when a test fails


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes, within DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        return await reader.read(-1)


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    """Exactly `size` bytes, within DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        return await reader.readexactly(size)

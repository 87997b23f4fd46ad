"""Services that run on a held socket: HTTP and TCP stubs, and real programs."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.profile.models import CommandService, HttpService, TcpService
    from sandbox.services.context import ServiceContext, StubServer


async def serve(
    spec: HttpService | TcpService | CommandService, sock: socket.socket, ctx: ServiceContext
) -> StubServer:
    """Start the stub for `spec` on `sock` (bound, listening); the stub then owns the socket.

    Raises ValueError for a `command` service (a real program, started elsewhere) and
    StubConfigError for routes that cannot be built; on failure the socket is the caller's.
    """
    # Imported here: aiohttp is only paid for by the processes that serve something.
    if spec.kind == "http":
        from sandbox.services.http import serve_http

        return await serve_http(spec, sock, ctx)
    if spec.kind == "tcp":
        from sandbox.services.tcp import serve_tcp

        return await serve_tcp(spec, sock, ctx)
    raise ValueError(f"{ctx.name} is a {spec.kind} service: it is a program, not a stub to serve")

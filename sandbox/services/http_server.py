"""Serve one aiohttp handler on a held socket with aiohttp's low-level server, nothing more.

An `Application` + `AppRunner` + `SockSite` per stub cost about 0.7 ms and a few dozen
objects each (a router, signals, a runner, a site); a stub needs only the protocol factory
(`web.Server`) and the listening asyncio server: about 0.13 ms. Stopping does what
`AppRunner.cleanup()` does, in the same order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def _with_expect(handler: Handler) -> Handler:
    """Answer `Expect: 100-continue` before the handler reads the body, as aiohttp's router
    does (a client such as curl otherwise waits a second before it sends a large body)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if hdrs.EXPECT in request.headers and request.version == HttpVersion11:
            expect = request.headers[hdrs.EXPECT]
            if expect.lower() != "100-continue":
                raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
            writer = request.writer
            await writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.output_size = 0
        return await handler(request)

    return handle


class LightSite:
    """`handler` served on `sock` (bound and listening) until `close()`.

    `on_shutdown` runs when closing begins (hanging handlers let go), `on_cleanup` after
    every connection is closed (e.g. a proxy's client session); `logger` gets aiohttp's
    own messages (a malformed request).
    """

    def __init__(
        self,
        handler: Handler,
        sock: socket.socket,
        *,
        grace: float,
        on_shutdown: Callable[[], None] | None = None,
        on_cleanup: Callable[[], Awaitable[None]] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._sock = sock
        self._grace = grace
        self._on_shutdown = on_shutdown
        self._on_cleanup = on_cleanup
        # access_log=None: every request is logged by the stub itself.
        extra: dict[str, Any] = {"logger": logger} if logger is not None else {}
        self._web = web.Server(
            _with_expect(handler), handler_cancellation=True, access_log=None, **extra
        )
        self._server: asyncio.Server | None = None
        self._closing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen. A backlog of SOMAXCONN: asyncio calls listen() again, which must not
        shrink the queue the socket was given."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._web, sock=self._sock, backlog=socket.SOMAXCONN
        )

    async def close(self) -> None:
        """Stop listening, drop idle connections, let in-flight requests finish within the
        grace (then cancel them), then clean up. Idempotent; concurrent calls share one close."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()
        # Let requests that arrived before the close start being handled (as AppRunner does).
        await asyncio.sleep(0)
        self._web.pre_shutdown()
        if self._on_shutdown is not None:
            self._on_shutdown()
        await self._web.shutdown(self._grace)
        if self._on_cleanup is not None:
            await self._on_cleanup()

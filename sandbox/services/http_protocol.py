"""Serve aiohttp's low-level server so that a client that half-closes is still answered."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

# While answers to pipelined requests are still queued when the client half-closes, how
# often to look whether they are all written (only then is the connection closed).
_QUEUED_POLL = 0.005


class HalfCloseProtocol(asyncio.Protocol):
    """aiohttp's RequestHandler, except at end-of-file from the client.

    aiohttp's handler returns nothing from `eof_received`, so asyncio closes the transport
    and aiohttp cancels the request in flight: a client that sends its request and then
    shuts down its writing side (`nc -N`, `shutdown(SHUT_WR)`) gets no answer
    (aio-libs/aiohttp#3659). Here the write side stays open; what was already received is
    answered; then the connection is closed, as nginx does.
    """

    def __init__(self, inner: RequestHandler) -> None:
        self.inner = inner
        self.ended = asyncio.Event()  # set at end-of-file from the client, or connection loss

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _OPEN[self.inner] = self
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ended.set()
        _OPEN.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool:
        self.ended.set()
        transport = self.inner.transport
        if transport is not None and transport.get_extra_info("sslcontext") is not None:
            # asyncio's TLS cannot half-close (it warns and closes whatever we return).
            return False
        inner: Any = self.inner  # the state read below is aiohttp's own, not in its API
        parser = inner._parser
        try:
            if parser is not None:
                parser.feed_eof()
        except HttpProcessingError as exc:
            # A body cut short by the EOF can never complete: say so, rather than wait.
            self._refuse(exc)
            return True
        self._close_when_answered()
        return True  # keep the transport open for writing

    def _refuse(self, exc: HttpProcessingError) -> None:
        transport = self.inner.transport
        if transport is not None:
            text = f"bad request: {exc.message}\n".encode()
            head = (
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n"
            )
            transport.write(head.encode() + text)
        self.inner.force_close()  # the handler waiting for the rest of the body is cancelled

    def _close_when_answered(self) -> None:
        inner: Any = self.inner
        if inner.transport is None:
            return  # already closed
        if inner._messages:  # pipelined requests still to answer: look again shortly
            asyncio.get_running_loop().call_later(_QUEUED_POLL, self._close_when_answered)
        elif inner._waiter is not None:
            inner.force_close()  # idle, waiting for a request that can no longer come
        else:
            # A request is being answered: aiohttp closes once it is written, because
            # `_close` stops its keep-alive loop (what `RequestHandler.close()` does,
            # without cancelling a waiter, since none is set).
            inner._close = True


# The wrapper of each open connection, found from the request's protocol (aiohttp's handler).
_OPEN: dict[RequestHandler, HalfCloseProtocol] = {}


async def until_client_closes(request: web.BaseRequest, released: asyncio.Event) -> None:
    """Wait until the client closes or half-closes its side, or `released` is set.

    How a `hang` fault lets go of a client that left: after its end-of-file nothing more can
    be asked on the connection, so nothing is lost by dropping it.
    """
    wrapper = _OPEN.get(request.protocol)
    waits = [asyncio.ensure_future(released.wait())]
    if wrapper is not None:
        waits.append(asyncio.ensure_future(wrapper.ended.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def start_site(
    server: Server, sock: socket.socket, ssl_context: ssl.SSLContext | None = None
) -> asyncio.Server:
    """Serve aiohttp's low-level `server` on `sock` (bound, listening); the asyncio server
    returned owns the socket. Close it (and wait for it) before `server.shutdown()`."""
    loop = asyncio.get_running_loop()
    # A backlog of SOMAXCONN: asyncio calls listen() again and must not shrink the queue.
    return await loop.create_server(
        lambda: HalfCloseProtocol(server()),
        sock=sock,
        ssl=ssl_context,
        backlog=socket.SOMAXCONN,
    )

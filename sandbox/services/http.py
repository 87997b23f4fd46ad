"""HTTP stubs: one aiohttp handler that walks the profile's routes, served on a held socket."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from sandbox.net.addresses import format_hostport
from sandbox.profile.models import HttpService, Route
from sandbox.services.context import RequestRecord, ServiceContext
from sandbox.services.faults import inflict
from sandbox.services.http_answers import build, json_response, template_variables
from sandbox.services.http_index import RouteIndex, prebuild, uses_request
from sandbox.services.http_proxy import forward, new_session
from sandbox.services.http_routes import Incoming, compile_routes, find, near_misses
from sandbox.services.http_server import LightSite
from sandbox.services.templates import StubConfigError

# How long close() lets in-flight requests (a slow `delay`, a proxied call) finish before
# cancelling them; hanging connections are released at once, not after this.
SHUTDOWN_GRACE = 1.0


def _default_routes(ctx: ServiceContext) -> list[Route]:
    """`GET /` and `GET /health` naming the service, for an http service without routes."""
    doc = {
        "service": ctx.name,
        "kind": "http",
        "address": ctx.address,
        "port": ctx.port,
        "ok": True,
    }
    return [
        Route.model_validate({"method": "GET", "path": path, "response": {"json": doc}})
        for path in ("/", "/health")
    ]


def _parse_json(text: str) -> Any:
    # A body nested deeper than the parser's recursion allows is not JSON we can match.
    try:
        return json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return None


class _OneLineLogger(logging.Logger):
    """aiohttp's server logger for one stub: a malformed request is one line in the
    service's log, never a traceback in the supervisor's."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(f"sandbox.stub.{ctx.name}", logging.INFO)
        self.propagate = False
        self._ctx = ctx

    def handle(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += f": {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._ctx.log(f"[sandbox] {text}")


class _Outcome:
    """What happened to one request, for the log line and the history."""

    def __init__(self, request: web.BaseRequest) -> None:
        self.request = request
        self.wall, self.started = time.time(), time.monotonic()
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        self.peer = format_hostport(*peername[:2]) if peername else ""
        self.status: int | None = None
        self.fault: str | None = None
        self.bytes_in = self.bytes_out = 0
        self.finished = False

    def ended(self, response: web.StreamResponse, fault: str | None) -> None:
        self.finished = True
        self.fault = fault
        if fault is None:  # after a fault the response is a placeholder nobody receives
            self.status = response.status
            body = response.body if isinstance(response, web.Response) else None
            self.bytes_out = len(body) if isinstance(body, bytes) else 0

    def record(self) -> RequestRecord:
        return RequestRecord(
            time=self.wall,
            method=self.request.method,
            path=self.request.path_qs,
            status=self.status,
            latency_ms=(time.monotonic() - self.started) * 1000,
            fault=self.fault,
            peer=self.peer,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )


class _Dispatcher:
    """The one aiohttp handler: tries the routes in profile order, logs and records."""

    def __init__(self, spec: HttpService, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.routes = compile_routes(spec.routes or _default_routes(ctx), ctx.name)
        self.history: deque[RequestRecord] = deque(maxlen=ctx.history_limit)
        self.released = asyncio.Event()  # set on shutdown: hanging handlers let go
        self.session: aiohttp.ClientSession | None = None  # for proxy routes
        self.index = RouteIndex(self.routes)
        # Built once, keyed by the compiled answer: a constant answer costs a copy per request.
        self.prebuilt = {
            id(answer): built
            for route in self.routes
            for answer in route.answers
            if (built := prebuild(answer)) is not None
        }
        # No condition or template looks at the query or the body's JSON: skip parsing them.
        self.reads_request = uses_request(self.routes)
        for route in self.routes:
            target = route.spec.proxy
            if target is not None and target not in ctx.peers:
                known = ", ".join(sorted(ctx.peers)) or "none"
                raise StubConfigError(
                    f"{route.where}.proxy: there is no service named {target!r} to proxy to.",
                    hint=f"Name one of the profile's services: {known}.",
                )

    @property
    def proxies(self) -> bool:
        return any(route.spec.proxy for route in self.routes)

    async def release(self, app: web.Application) -> None:
        """on_shutdown hook: hanging connections are dropped now, not after the grace."""
        self.released.set()

    async def session_context(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx entry of an app: the proxy session, closed on cleanup."""
        self.session = new_session()
        try:
            yield
        finally:
            await self.close_session()

    async def close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request; log and record it however it ends, cancelled included."""
        outcome = _Outcome(request)
        try:
            body = await request.read()
            outcome.bytes_in = len(body)
            response, fault = await self._answer(request, body)
            outcome.ended(response, fault)
            return response
        except web.HTTPException as exc:  # e.g. a body over client_max_size
            outcome.ended(exc, None)
            raise
        except Exception as exc:  # a bug in the stub must still answer, and say what broke
            self.ctx.log(f"{request.method} {request.path_qs} failed: {type(exc).__name__}: {exc}")
            response = json_response(500, {"error": "the stub failed", "detail": repr(exc)})
            outcome.ended(response, None)
            return response
        finally:
            record = outcome.record()
            if self.ctx.log_requests:
                shown = "-" if record.status is None else str(record.status)
                extra = f" fault={record.fault}" if record.fault else ""
                if not outcome.finished:
                    extra += " (cancelled: the client left or the server is closing)"
                line = f"{record.method} {record.path} {shown} {record.latency_ms:.1f}ms{extra}"
                self.ctx.log(line)
            self.history.append(record)

    async def _answer(
        self, request: web.BaseRequest, body: bytes
    ) -> tuple[web.Response, str | None]:
        text = body.decode("utf-8", "replace") if body else ""
        full = self.reads_request
        req = Incoming(
            method=request.method,
            path=request.rel_url.path_safe,
            query=request.query if full else _NO_QUERY,
            headers=request.headers,
            body=text,
            json=_parse_json(text) if full else None,
        )
        hit = find(self.index.candidates(req.path), req)
        if hit is None:
            if not full:  # near misses look at everything, as the routes would
                req = Incoming(
                    req.method, req.path, request.query, req.headers, text, _parse_json(text)
                )
            document = {
                "error": "no route matched",
                "method": req.method,
                "path": request.path,
                "closest": near_misses(self.routes, req),
            }
            return json_response(404, document), None
        route, params = hit
        spec = route.spec
        if spec.fault is not None:
            if request.transport is not None:
                await inflict(spec.fault, request.transport, self.released.wait)
            # The connection is gone: aiohttp's write of this placeholder fails quietly.
            return web.Response(status=500), spec.fault
        if spec.proxy is not None:
            peer, session = self.ctx.peers[spec.proxy], self.session
            assert session is not None  # opened with the app or by serve_http
            answer = await forward(
                request,
                body,
                spec.proxy,
                peer,
                self.ctx.name,
                self.ctx.log,
                spec.strip_prefix,
                session=session,
            )
            return answer, None
        chosen = route.next_answer()
        built = self.prebuilt.get(id(chosen))
        if built is not None:
            return built.response(), None
        variables = template_variables(req, params, self.ctx.peers)
        return await build(chosen, variables, self.ctx.profile_dir), None


_DISPATCHER = web.AppKey("sandbox_dispatcher", _Dispatcher)
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


def create_app(spec: HttpService, ctx: ServiceContext) -> web.Application:
    """The stub as an aiohttp app (nothing bound). Raises StubConfigError for a bad route."""
    dispatcher = _Dispatcher(spec, ctx)
    app = web.Application()
    app[_DISPATCHER] = dispatcher
    # One catch-all: aiohttp's router cannot fall through to the next route when `match` fails.
    app.router.add_route("*", "/{tail:.*}", dispatcher.handle)
    app.on_shutdown.append(dispatcher.release)
    if dispatcher.proxies:
        app.cleanup_ctx.append(dispatcher.session_context)
    return app


def history_of(app: web.Application) -> Sequence[RequestRecord]:
    """The bounded request history of an app made by `create_app`."""
    return app[_DISPATCHER].history


class HttpStub:
    """A running HTTP stub (a StubServer)."""

    def __init__(
        self, name: str, close: Callable[[], Awaitable[None]], history: Sequence[RequestRecord]
    ) -> None:
        self.name = name
        self._close = close
        self._history = history

    @property
    def history(self) -> Sequence[RequestRecord]:
        return self._history

    async def close(self) -> None:
        """Stop listening (the socket is closed), drop hanging connections, finish or cancel
        in-flight requests within SHUTDOWN_GRACE, close the proxy session. Idempotent."""
        await self._close()


async def serve_http(spec: HttpService, sock: socket.socket, ctx: ServiceContext) -> HttpStub:
    """Serve `spec` on `sock` (bound, listening); the returned stub owns the socket.

    Raises StubConfigError for a bad route; on any failure the socket stays open and
    remains the caller's to close.
    """
    dispatcher = _Dispatcher(spec, ctx)
    if dispatcher.proxies:
        dispatcher.session = new_session()
    # No Application or AppRunner per stub: aiohttp's low-level server on the held socket,
    # a fifth of the cost to start (bench/RESULTS.md, the N-scaling curve).
    site = LightSite(
        dispatcher.handle,
        sock,
        grace=SHUTDOWN_GRACE,
        on_shutdown=dispatcher.released.set,
        on_cleanup=dispatcher.close_session,
        logger=_OneLineLogger(ctx),
    )
    try:
        await site.start()
    except BaseException:
        await dispatcher.close_session()
        raise
    ctx.log(f"{ctx.name}: http stub serving on {ctx.url} ({len(spec.routes)} routes)")
    return HttpStub(ctx.name, site.close, dispatcher.history)

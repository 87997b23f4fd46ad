"""HTTP stubs: one handler that walks the profile's routes, served on a held socket."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from sandbox.errors import StubConfigError
from sandbox.profile.models import HttpService, Route
from sandbox.services.bounded import PatternTimeout
from sandbox.services.context import ServiceContext
from sandbox.services.faults import inflict
from sandbox.services.http_answers import (
    Head,
    build,
    build_body,
    json_response,
    template_variables,
)
from sandbox.services.http_extras import Extras, ExtrasHolder, decorate, preflight
from sandbox.services.http_index import Prebuilt, prebuild
from sandbox.services.http_match import Router
from sandbox.services.http_outcome import Outcome
from sandbox.services.http_protocol import HalfCloseProtocol, start_site, until_client_closes
from sandbox.services.http_proxy import Sessions, forward
from sandbox.services.http_routes import CompiledRoute, Incoming, compile_routes
from sandbox.services.journal import Journal
from sandbox.services.scenarios import Effects, StubState
from sandbox.services.templates import RenderError
from sandbox.services.tls import server_context

# How long close() lets in-flight requests (a slow `delay`, a proxied call) finish before
# cancelling them; hanging connections are released at once, not after this.
SHUTDOWN_GRACE = 1.0
_UNKNOWN: Any = object()
PROBE_AGENT = "sandbox-probe"  # the User-Agent of the sandbox's own probes: not journalled


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


def _checked_routes(spec: HttpService, ctx: ServiceContext) -> list[CompiledRoute]:
    """The compiled routes of `spec`. Raises StubConfigError for a bad route or proxy target."""
    routes = compile_routes(spec.routes or _default_routes(ctx), ctx.name)
    for route in routes:
        target = route.spec.proxy
        if target is not None and target not in ctx.peers:
            known = ", ".join(sorted(ctx.peers)) or "none"
            raise StubConfigError(
                f"{route.where}.proxy: there is no service named {target!r} to proxy to.",
                hint=f"Name one of the profile's services: {known}.",
            )
    return routes


class _Dispatcher:
    """The one request handler: tries the routes in profile order, logs and records."""

    def __init__(self, spec: HttpService, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.routes = _checked_routes(spec, ctx)
        self.router = Router(self.routes)
        self.effects = [Effects.of(r.spec, r.where) for r in self.routes]
        self.extras = ExtrasHolder(Extras.of(spec, ctx.name))
        self.journal = Journal(ctx.name, spec.journal.max, spec.journal.body_max, ctx.counter)
        scenarios = (r.spec.scenario.name for r in self.routes if r.spec.scenario)
        self.state = StubState(spec.vars, scenarios)
        self._released: asyncio.Event | None = None  # made when a fault first needs it
        self._closing = False
        self.prebuilt: dict[int, Prebuilt | None] = {}  # by id() of a compiled answer
        self.heads: dict[int, Head | None] = {}  # the same, for answers with a templated body
        self.sessions = Sessions(ctx.ca_bundle)  # the proxy's client, made on first use

    def prepare(self, spec: HttpService) -> Callable[[], None]:
        """Build `spec`'s routes; the returned function makes them answer from the next
        request on (a reload). Raises StubConfigError, having changed nothing."""
        routes, extras = _checked_routes(spec, self.ctx), Extras.of(spec, self.ctx.name)
        router, effects = Router(routes), [Effects.of(r.spec, r.where) for r in routes]

        def commit() -> None:
            # One step, no await between: a request sees the old routes or the new ones.
            self.routes, self.router, self.effects = routes, router, effects
            self.extras.current = extras
            # Keyed by id(): the old answers go, and a new one may be given an old id.
            self.prebuilt, self.heads = {}, {}

        return commit

    @property
    def released(self) -> asyncio.Event:
        """Set on shutdown: hanging handlers let go. Made on first use (few stubs hang)."""
        if self._released is None:
            self._released = asyncio.Event()
            if self._closing:
                self._released.set()
        return self._released

    def release(self) -> None:
        """Let every hanging handler go, now and from now on."""
        self._closing = True
        if self._released is not None:
            self._released.set()

    def has_options_route(self) -> bool:
        return any(route.spec.method == "OPTIONS" for route in self.routes)

    def make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """The low-level server's request factory: the body limit is the current `max_body`
        (a reload changes it for the next request)."""
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            asyncio.get_running_loop(),
            client_max_size=self.extras.current.max_body,
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request; log and journal it however it ends, cancelled included."""
        extras = self.extras.current
        # A CORS preflight is answered here, 204, unless a route of the profile takes OPTIONS.
        if (
            extras.cors
            and (answer := preflight(request, extras)) is not None
            and not self.has_options_route()
        ):
            self.ctx.log(f"OPTIONS {request.path_qs} 204 (CORS preflight)")
            decorate(request, answer, extras)
            return answer
        if extras.max_body != request.client_max_size:  # an app of create_app, reloaded
            request = request.clone(client_max_size=extras.max_body)
        outcome = Outcome(request)
        try:
            body = await request.read() if request.body_exists else b""
            outcome.body = body
            response, fault = await self._answer(request, body, outcome)
            outcome.ended(response, fault)
        except web.HTTPException as exc:  # e.g. a body over client_max_size
            outcome.ended(exc, None)
            if self.extras.current.decorates:
                decorate(request, exc, self.extras.current)
            raise
        except Exception as exc:  # a bug in the stub must still answer, and say what broke
            self.ctx.log(f"{request.method} {request.path_qs} failed: {type(exc).__name__}: {exc}")
            response = json_response(500, {"error": "the stub failed", "detail": repr(exc)})
            outcome.ended(response, None)
        finally:
            entry = outcome.entry(self.journal)
            if request.headers.get("User-Agent") != PROBE_AGENT:  # `sandbox status` probing
                self.journal.add(entry)
            if self.ctx.log_requests:  # on unless `log_requests: false` or --no-request-log
                self.ctx.log(outcome.log_line(entry))
        extras = self.extras.current
        if extras.decorates:
            decorate(request, response, extras)
        return response

    def reset(self) -> None:
        """Forget the journal, put scenarios and variables back, restart `responses` turns."""
        self.journal.clear()
        self.state.reset()
        for route in self.routes:
            route._turn = 0  # `responses` start again from the first

    async def _answer(
        self, request: web.BaseRequest, body: bytes, outcome: Outcome
    ) -> tuple[web.Response, str | None]:
        req = Incoming.of(request.method, request.rel_url.path_safe, request, request.headers, body)
        try:
            hit = self.router.find(req, self.state)
            misses = self.router.nearest(req, self.state) if hit is None else []
        except PatternTimeout as exc:  # a body or JSON pattern, on a large body
            self.ctx.log(f"{request.method} {request.path_qs}: {exc}")
            problem = {"error": "a pattern of this stub took too long", "detail": str(exc)}
            return json_response(500, problem), None
        if hit is None:
            outcome.miss = misses[0] if misses else None
            document = {
                "error": "no route matched",
                "method": req.method,
                "path": request.path,
                "closest": [miss.to_json() for miss in misses],
            }
            return json_response(404, document), None
        index, route, params = hit
        outcome.route, outcome.route_name = index, route.name
        spec = route.spec
        if not (spec.fault or spec.proxy) and _no_effects(self.effects[index]):
            # A constant answer (no template, file or delay) is built once, not per request.
            chosen = route.next_answer()
            key = id(chosen)
            if key not in self.prebuilt:
                self.prebuilt[key] = prebuild(chosen)
            built = self.prebuilt[key]
            if built is not None:
                return built.response(), None
            # Only what its templates read: a query, body or JSON nobody reads is not parsed.
            names = chosen.names
            variables = template_variables(req, params, self.ctx.peers, names)
            if "vars" in names or "scenarios" in names:
                variables.update(self.state.template_view())
            if "query_all" in names or "env" in names:
                variables.update(self.extras.current.variables(req))
            head = self.heads.get(key, _UNKNOWN)
            if head is _UNKNOWN:
                head = self.heads[key] = Head.of(chosen)
            if head is not None:
                return build_body(chosen, head, variables), None
            return await build(chosen, variables, self.ctx.profile_dir), None
        variables = template_variables(req, params, self.ctx.peers)
        try:
            self.state.apply(self.effects[index], variables)
        except RenderError as exc:
            document = {
                "error": "a `set` template failed",
                "where": exc.where,
                "detail": exc.detail,
                "template": exc.source,
            }
            return json_response(500, document), None
        if spec.fault is not None:
            if request.transport is not None:
                hold = partial(until_client_closes, request, self.released)
                await inflict(spec.fault, request.transport, hold)
            # The connection is gone: aiohttp's write of this placeholder fails quietly.
            return web.Response(status=500), spec.fault
        if spec.proxy is not None:
            peer = self.ctx.peers[spec.proxy]
            answer = await forward(
                request,
                body,
                self.sessions,
                spec.proxy,
                peer,
                self.ctx.name,
                self.ctx.log,
                spec.strip_prefix,
                spec.add_prefix,
            )
            return answer, None
        variables.update(self.state.template_view())
        variables.update(self.extras.current.variables(req))
        return await build(route.next_answer(), variables, self.ctx.profile_dir), None


def _no_effects(effects: Effects) -> bool:
    """Answering the route changes no variable and moves no scenario."""
    return not effects.sets and (effects.step is None or effects.step.then is None)


_DISPATCHER = web.AppKey("sandbox_dispatcher", _Dispatcher)


def create_app(spec: HttpService, ctx: ServiceContext) -> web.Application:
    """The stub as an aiohttp app (nothing bound), for tests with aiohttp's test client;
    `serve_http` serves the same dispatcher without the app. Raises StubConfigError for a
    bad route."""
    dispatcher = _Dispatcher(spec, ctx)
    app = web.Application(client_max_size=spec.max_body)
    app[_DISPATCHER] = dispatcher
    app.router.add_route("*", "/{tail:.*}", dispatcher.handle)

    async def release(app: web.Application) -> None:
        dispatcher.release()

    async def close_sessions(app: web.Application) -> None:
        await dispatcher.sessions.close()

    app.on_shutdown.append(release)
    app.on_cleanup.append(close_sessions)
    return app


def journal_of(app: web.Application) -> Journal:
    """The journal of an app made by `create_app`."""
    return app[_DISPATCHER].journal


class HttpStub:
    """A running HTTP stub (a StubServer)."""

    def __init__(
        self,
        name: str,
        web_server: Server,
        dispatcher: _Dispatcher,
        server: asyncio.Server,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self._web = web_server
        self._dispatcher = dispatcher
        self._server = server
        self._ssl = ssl_context
        self._closing: asyncio.Task[None] | None = None
        self._adopting: set[asyncio.Task[object]] | None = None  # made on first use

    def adopt(self, conn: socket.socket) -> None:
        """Serve `conn`, accepted from this stub's socket elsewhere (see StubServer)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            loop.connect_accepted_socket(
                lambda: HalfCloseProtocol(self._web()), sock=conn, ssl=self._ssl
            )
        )
        if self._adopting is None:
            self._adopting = set()
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    @property
    def journal(self) -> Journal:
        return self._dispatcher.journal

    @property
    def state(self) -> StubState:
        return self._dispatcher.state

    def reset(self) -> None:
        """Forget the journal, put scenarios and variables back, restart `responses` turns."""
        self._dispatcher.reset()

    def prepare_reload(self, spec: HttpService) -> Callable[[], None]:
        """See _Dispatcher.prepare: the socket and open connections stay as they are."""
        return self._dispatcher.prepare(spec)

    async def close(self) -> None:
        """Stop listening (the socket is closed), drop hanging connections, finish or cancel
        in-flight requests within SHUTDOWN_GRACE, close the proxy session. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shutdown())
        await asyncio.shield(self._closing)

    async def _shutdown(self) -> None:
        # What aiohttp's AppRunner.cleanup does, in its order.
        self._server.close()  # stop listening first, then end the connections
        # Requests that arrived before have all started to be handled before idle
        # connections are closed.
        await asyncio.sleep(0)
        self._web.pre_shutdown()
        self._dispatcher.release()  # hanging connections are dropped now
        await self._web.shutdown(SHUTDOWN_GRACE)
        await self._dispatcher.sessions.close()


def _tls(spec: HttpService, ctx: ServiceContext) -> ssl.SSLContext | None:
    if not spec.tls:
        return None
    if ctx.certificate is None:
        raise StubConfigError(
            f"services.{ctx.name}.tls: there is no certificate to serve HTTPS with.",
            hint="The sandbox makes one at `up`; a stub served by hand needs "
            "ServiceContext(certificate=...).",
        )
    return server_context(ctx.certificate)


async def serve_http(spec: HttpService, sock: socket.socket, ctx: ServiceContext) -> HttpStub:
    """Serve `spec` on `sock` (bound, listening); the returned stub owns the socket.

    Served by aiohttp's low-level server (no Application, router, middleware or signals:
    the dispatcher is the only handler and does what those did). Raises StubConfigError
    for a bad route; on any failure the socket stays open and remains the caller's to close.
    """
    ssl_context = _tls(spec, ctx)
    dispatcher = _Dispatcher(spec, ctx)
    web_server = Server(
        dispatcher.handle,
        request_factory=dispatcher.make_request,
        handler_cancellation=True,  # a client that leaves cancels its delayed or hanging request
        access_log=None,  # every request is logged through ctx.log instead
        logger=_OneLineLogger(ctx),
    )
    server = await start_site(web_server, sock, ssl_context)
    ctx.log(f"{ctx.name}: http stub serving on {ctx.url} ({len(spec.routes)} routes)")
    return HttpStub(ctx.name, web_server, dispatcher, server, ssl_context)

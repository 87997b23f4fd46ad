"""HTTP stubs: an aiohttp app that walks the profile's routes, served on a held socket."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from sandbox.errors import StubConfigError
from sandbox.profile.models import HttpService, Route
from sandbox.services.context import ServiceContext
from sandbox.services.faults import inflict
from sandbox.services.http_answers import build, json_response, template_variables
from sandbox.services.http_extras import EXTRAS, Extras, ExtrasHolder, on_prepare
from sandbox.services.http_extras import middleware as extras_middleware
from sandbox.services.http_index import Prebuilt, prebuild
from sandbox.services.http_match import Router, route_name
from sandbox.services.http_outcome import Outcome
from sandbox.services.http_protocol import start_site, until_client_closes
from sandbox.services.http_proxy import forward, session_context
from sandbox.services.http_routes import CompiledRoute, Incoming, compile_routes
from sandbox.services.journal import Journal
from sandbox.services.scenarios import Effects, StubState
from sandbox.services.templates import RenderError
from sandbox.services.tls import server_context

# How long close() lets in-flight requests (a slow `delay`, a proxied call) finish before
# cancelling them; hanging connections are released at once, not after this.
SHUTDOWN_GRACE = 1.0
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
    """The one aiohttp handler: tries the routes in profile order, logs and records."""

    def __init__(self, spec: HttpService, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.routes = _checked_routes(spec, ctx)
        self.router = Router(self.routes)
        self.effects = [Effects.of(r.spec, r.where) for r in self.routes]
        self.extras = ExtrasHolder(Extras.of(spec, ctx.name))
        self.journal = Journal(ctx.name, spec.journal.max, spec.journal.body_max, ctx.counter)
        scenarios = (r.spec.scenario.name for r in self.routes if r.spec.scenario)
        self.state = StubState(spec.vars, scenarios)
        self.released = asyncio.Event()  # set on shutdown: hanging handlers let go
        self.prebuilt: dict[int, Prebuilt | None] = {}  # by id() of a compiled answer

    def prepare(self, spec: HttpService) -> Callable[[], None]:
        """Build `spec`'s routes; the returned function makes them answer from the next
        request on (a reload). Raises StubConfigError, having changed nothing."""
        routes, extras = _checked_routes(spec, self.ctx), Extras.of(spec, self.ctx.name)
        router, effects = Router(routes), [Effects.of(r.spec, r.where) for r in routes]

        def commit() -> None:
            # One step, no await between: a request sees the old routes or the new ones.
            self.routes, self.router, self.effects = routes, router, effects
            self.extras.current = extras

        return commit

    def has_options_route(self) -> bool:
        return any(route.spec.method == "OPTIONS" for route in self.routes)

    async def release(self, app: web.Application) -> None:
        """on_shutdown hook: hanging connections are dropped now, not after the grace."""
        self.released.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; log and journal it however it ends, cancelled included."""
        outcome = Outcome(request, self.journal)
        try:
            body = await request.read()
            outcome.received(body)
            response, fault = await self._answer(request, body, outcome)
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
            entry = outcome.entry()
            if request.headers.get("User-Agent") != PROBE_AGENT:  # `sandbox status` probing
                self.journal.add(entry)
            if self.ctx.log_requests:  # on unless `log_requests: false` or --no-request-log
                self.ctx.log(outcome.log_line(entry))

    def reset(self) -> None:
        """Forget the journal, put scenarios and variables back, restart `responses` turns."""
        self.journal.clear()
        self.state.reset()
        for route in self.routes:
            route._turn = 0  # `responses` start again from the first

    async def _answer(
        self, request: web.Request, body: bytes, outcome: Outcome
    ) -> tuple[web.Response, str | None]:
        text = body.decode("utf-8", "replace")
        req = Incoming(
            method=request.method,
            path=request.rel_url.path_safe,
            query=request.query,
            headers=request.headers,
            body=text,
            json=_parse_json(text),
        )
        hit = self.router.find(req, self.state)
        if hit is None:
            misses = self.router.nearest(req, self.state)
            outcome.miss = misses[0] if misses else None
            document = {
                "error": "no route matched",
                "method": req.method,
                "path": request.path,
                "closest": [miss.to_json() for miss in misses],
            }
            return json_response(404, document), None
        index, route, params = hit
        outcome.answered_by(index, route_name(route))
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
            variables = template_variables(req, params, self.ctx.peers)
            variables.update(self.state.template_view())
            variables.update(self.extras.current.variables(req))
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
    """The stub as an aiohttp app (nothing bound). Raises StubConfigError for a bad route."""
    dispatcher = _Dispatcher(spec, ctx)
    app = web.Application(
        client_max_size=spec.max_body,
        middlewares=[extras_middleware(dispatcher.has_options_route, ctx.log)],
    )
    app[_DISPATCHER] = dispatcher
    app[EXTRAS] = dispatcher.extras
    app.on_response_prepare.append(on_prepare)
    # One catch-all: aiohttp's router cannot fall through to the next route when `match` fails.
    app.router.add_route("*", "/{tail:.*}", dispatcher.handle)
    app.on_shutdown.append(dispatcher.release)
    app.cleanup_ctx.append(session_context(ctx.ca_bundle))  # the session is made on first use
    return app


def journal_of(app: web.Application) -> Journal:
    """The journal of an app made by `create_app`."""
    return app[_DISPATCHER].journal


class HttpStub:
    """A running HTTP stub (a StubServer)."""

    def __init__(
        self, name: str, runner: web.AppRunner, dispatcher: _Dispatcher, server: asyncio.Server
    ) -> None:
        self.name = name
        self._runner = runner
        self._dispatcher = dispatcher
        self._server = server
        self._closing: asyncio.Task[None] | None = None

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
        return self._runner.app[_DISPATCHER].prepare(spec)

    async def close(self) -> None:
        """Stop listening (the socket is closed), drop hanging connections, finish or cancel
        in-flight requests within SHUTDOWN_GRACE, close the proxy session. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shutdown())
        await asyncio.shield(self._closing)

    async def _shutdown(self) -> None:
        self._server.close()  # stop listening first, then let the runner end connections
        await self._runner.cleanup()


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

    Raises StubConfigError for a bad route; on any failure the socket stays open and
    remains the caller's to close.
    """
    ssl_context = _tls(spec, ctx)
    app = create_app(spec, ctx)
    runner = web.AppRunner(
        app,
        access_log=None,  # every request is logged through ctx.log instead
        logger=_OneLineLogger(ctx),
        handle_signals=False,
        handler_cancellation=True,  # a client that leaves cancels its delayed or hanging request
        shutdown_timeout=SHUTDOWN_GRACE,
    )
    await runner.setup()
    try:
        server = await start_site(runner, sock, ssl_context)
    except BaseException:
        await runner.cleanup()
        raise
    ctx.log(f"{ctx.name}: http stub serving on {ctx.url} ({len(spec.routes)} routes)")
    return HttpStub(ctx.name, runner, app[_DISPATCHER], server)

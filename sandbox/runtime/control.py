"""The control API: a small JSON HTTP server on a loopback address of the sandbox that gives
tests in any language the stubs' journals, verification, reset and scenario state.

It answers only requests whose Host names a loopback literal or `localhost` with its own
port, and whose Origin (when sent) is loopback too: a web page that rebinds a name of its
own to 127.0.0.1 (DNS rebinding) is refused with 403. And only under a secret path
(`http://127.0.0.1:PORT/TOKEN/...`), known from the sandbox's record (a 0700 folder) or
SANDBOX_CONTROL_URL: another user's process on the machine cannot use it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.errors import UsageError
from sandbox.net.addresses import format_url
from sandbox.runtime.stubs import StubRegistry, UnknownStub

ENDPOINTS = {
    "GET /journal[?service=&method=&path=&since=]": "what the stubs received, oldest first",
    "POST /verify": "did a stub receive a request: 200 when it did as expected, else 409",
    "POST /reset": "forget journals and put scenarios and variables back ({service?})",
    "GET /state[/SERVICE]": "scenario states and variables",
    "PUT /state/SERVICE": "replace scenario states and/or variables",
    "GET /services": "the stubs and how much each journal holds",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, port: int) -> bool:
    """Whether a Host header names a loopback literal or localhost with our port."""
    if not host:
        return False
    try:
        parts = urlsplit(f"//{host}")
        return parts.port == port and parts.hostname is not None and _is_loopback(parts.hostname)
    except ValueError:  # a port that is not a number, unbalanced brackets
        return False


def origin_allowed(origin: str | None) -> bool:
    """Whether an Origin header is absent or a loopback origin (`null` is not)."""
    if origin is None:
        return True
    try:
        hostname = urlsplit(origin).hostname
    except ValueError:
        return False
    return hostname is not None and _is_loopback(hostname)


def _json(status: int, document: Any) -> web.Response:
    body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return web.Response(status=status, text=body, content_type="application/json")


def _error(status: int, message: str, hint: str | None = None) -> web.Response:
    return _json(status, {"error": message, "hint": hint})


class _Api:
    def __init__(self, registry: StubRegistry, port: int, prefix: str) -> None:
        self.registry = registry
        self.port = port
        self.prefix = prefix

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Loopback Host and Origin only; sandbox errors become JSON with a status."""
        if not host_allowed(request.headers.get("Host"), self.port):
            return _error(
                403,
                f"refused: the Host header {request.headers.get('Host')!r} is not this "
                f"control API's loopback address and port.",
                f"Send Host: 127.0.0.1:{self.port} (what a client sends for a literal URL).",
            )
        if not origin_allowed(request.headers.get("Origin")):
            return _error(
                403, f"refused: the Origin {request.headers.get('Origin')!r} is not loopback."
            )
        if request.path != self.prefix and not request.path.startswith(self.prefix + "/"):
            return _error(
                403,
                "refused: the control API answers only under its URL.",
                "Take the URL from `sandbox status --json` (control) or SANDBOX_CONTROL_URL.",
            )
        try:
            return await handler(request)
        except UnknownStub as exc:
            return _error(404, exc.message, exc.hint)
        except UsageError as exc:
            return _error(400, exc.message, exc.hint)

    async def index(self, request: web.Request) -> web.Response:
        return _json(200, {"sandbox": self.registry.sandbox, "endpoints": ENDPOINTS})

    async def services(self, request: web.Request) -> web.Response:
        stubs = self.registry.stubs.values()
        return _json(
            200,
            {s.name: {"entries": len(s.journal), "max": s.journal.max} for s in stubs},
        )

    async def journal(self, request: web.Request) -> web.Response:
        return _json(200, self.registry.journal_json(request.query))

    async def verify(self, request: web.Request) -> web.Response:
        verdict = self.registry.verify_json(await _body(request))
        return _json(200 if verdict["ok"] else 409, verdict)

    async def reset(self, request: web.Request) -> web.Response:
        document = await _body(request, default={})
        if not isinstance(document, dict) or set(document) - {"service"}:
            raise UsageError('reset takes a JSON object with an optional "service".')
        return _json(200, {"reset": self.registry.reset(document.get("service"))})

    async def get_state(self, request: web.Request) -> web.Response:
        return _json(200, self.registry.state_json(request.match_info.get("service")))

    async def put_state(self, request: web.Request) -> web.Response:
        service = request.match_info["service"]
        return _json(200, self.registry.put_state(service, await _body(request)))


async def _body(request: web.Request, default: Any = None) -> Any:
    text = await request.text()
    if not text.strip():
        if default is not None:
            return default
        raise UsageError("this request needs a JSON body.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the body is not JSON: {exc}.") from None


def create_control_app(registry: StubRegistry, port: int, prefix: str = "") -> web.Application:
    """The control API as an aiohttp app for a server listening on `port` (nothing bound),
    answering under `prefix` (`/TOKEN`, or "" for none)."""
    api = _Api(registry, port, prefix)
    app = web.Application(middlewares=[api.guard])
    app.router.add_get(prefix + "/", api.index)
    if prefix:
        app.router.add_get(prefix, api.index)
    app.router.add_get(prefix + "/services", api.services)
    app.router.add_get(prefix + "/journal", api.journal)
    app.router.add_post(prefix + "/verify", api.verify)
    app.router.add_post(prefix + "/reset", api.reset)
    app.router.add_get(prefix + "/state", api.get_state)
    app.router.add_get(prefix + "/state/{service}", api.get_state)
    app.router.add_put(prefix + "/state/{service}", api.put_state)
    return app


class ControlServer:
    """The control API serving on its held socket until `close()`."""

    def __init__(self, runner: web.AppRunner, address: str, port: int, prefix: str) -> None:
        self._runner = runner
        self.address, self.port = address, port
        self.url = format_url(address, port) + prefix  # what clients are told: the secret too
        self._closing: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._runner.cleanup())
        await asyncio.shield(self._closing)


async def serve_control(registry: StubRegistry, sock: socket.socket) -> ControlServer:
    """Serve the control API on `sock` (bound to loopback, listening); it then owns the socket."""
    address, port = sock.getsockname()[:2]
    if not ipaddress.ip_address(address).is_loopback:  # the rule: nothing else may reach it
        raise UsageError(f"the control API binds only loopback, not {address}.")
    prefix = "/" + secrets.token_urlsafe(18)
    runner = web.AppRunner(
        create_control_app(registry, port, prefix), access_log=None, handle_signals=False
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        raise
    return ControlServer(runner, address, port, prefix)

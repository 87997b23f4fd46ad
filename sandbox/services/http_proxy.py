"""`proxy: SERVICE` routes: forward a request to another service and relay its answer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping
from yarl import URL

from sandbox.services.context import Peer
from sandbox.services.http_answers import json_response
from sandbox.services.tls import client_context


class Sessions:
    """A stub's one client session, made on the first proxied request (a reload may add
    the first proxy route), closed when the stub stops."""

    def __init__(self, ca_bundle: Path | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ca_bundle = ca_bundle  # a `tls: true` service is verified against the sandbox CA

    def get(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
            )
            # trust_env=False: an HTTP_PROXY in the environment must never send loopback
            # traffic away.
            ssl_context = client_context(self._ca_bundle) if self._ca_bundle else True
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context),
                timeout=timeout,
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}
# The body is relayed decompressed and whole, so its encoding and length headers are stale.
_NOT_RELAYED = HOP_BY_HOP | {"content-encoding", "content-length"}
# aiohttp adds these when absent; a proxy must not invent headers the client did not send.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _without(headers: MultiMapping[str], dropped: frozenset[str]) -> CIMultiDict[str]:
    # Headers named in Connection are hop-by-hop for this hop only (RFC 9110, 7.6.1).
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    return CIMultiDict(
        (name, value)
        for name, value in headers.items()
        if name.lower() not in dropped and name.lower() not in named
    )


def _via_token(service: str) -> str:
    return f"sandbox-{service}"


def _problem(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {READ_TIMEOUT:g}s (connect limit {CONNECT_TIMEOUT:g}s)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        # asyncio's message ("Connect call failed (...)") hides the reason the errno gives.
        code = exc.os_error.errno
        reason = os.strerror(code) if code else str(exc.os_error)
        return f"could not connect: {reason.lower()} (is the service up and listening?)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the service closed the connection without answering"
    return f"{type(exc).__name__}: {exc}"


async def forward(
    request: web.BaseRequest,
    body: bytes,
    sessions: Sessions,
    target: str,
    peer: Peer,
    me: str,
    log: Callable[[str], None],
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
) -> web.Response:
    """Relay `request` (its body already read) to `peer`; 502/508 JSON when that fails.

    Method, the original path (less `strip_prefix`, then with `add_prefix` in front) and
    query, headers (without hop-by-hop and Host) and body go upstream; the status, headers
    (without hop-by-hop, Content-Encoding, Content-Length) and body come back.
    """
    path = request.raw_path
    if strip_prefix and path.startswith(strip_prefix.rstrip("/")):
        path = path[len(strip_prefix.rstrip("/")) :]
        path = path if path.startswith("/") else "/" + path
    if add_prefix:
        path = add_prefix.rstrip("/") + path
    url = URL(peer.url.rstrip("/") + path, encoded=True)
    via = request.headers.getall("Via", [])
    if any(_via_token(me) in value.split() for value in via):
        return json_response(
            508,
            {
                "error": "proxy loop",
                "service": target,
                "url": str(url),
                "via": via,
                "detail": f"this request already passed through {me}",
            },
        )
    headers = _without(request.headers, _NOT_FORWARDED)
    headers.add("Via", f"1.1 {_via_token(me)}")
    if request.remote:
        headers.add("X-Forwarded-For", request.remote)
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Proto"] = request.scheme
    try:
        async with sessions.get().request(
            request.method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
        ) as upstream:
            payload = await upstream.read()
            relayed = _without(upstream.headers, _NOT_RELAYED)
            return web.Response(
                status=upstream.status, reason=upstream.reason, body=payload, headers=relayed
            )
    except (TimeoutError, aiohttp.ClientError) as exc:
        what = _problem(exc)
        log(f"proxy to {target} at {url} failed: {what}")
        return json_response(
            502,
            {
                "error": f"proxy to service {target!r} failed",
                "service": target,
                "url": str(url),
                "detail": what,
            },
        )

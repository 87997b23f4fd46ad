"""The HTTP probe: one HTTP/1.1 request over a raw stream, its status line, head and some body."""

from __future__ import annotations

import asyncio
import re
import ssl
import time

from sandbox.net.addresses import format_hostport
from sandbox.probe.endpoint import _check, _failed
from sandbox.probe.result import BODY_LIMIT, ProbeResult, ProbeState, _excerpt, _ms, _seconds
from sandbox.probe.tcp import _close, _open_stream
from sandbox.probe.tls import tls_problem

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: ([^\r\n]*))?\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class _NotHttp(Exception):
    """What answered broke HTTP/1.1; the text ends the sentence that starts with ADDR:PORT."""


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # the stream's limit: no newline within BODY_LIMIT bytes
        raise _NotHttp("sent a line longer than 64 KiB") from None


async def _exactly(reader: asyncio.StreamReader, size: int, into: bytearray) -> None:
    # Piece by piece, not readexactly(): what arrived before a deadline stays in `into`.
    while size > 0:
        if not (chunk := await reader.read(size)):
            raise _NotHttp("closed the connection in the middle of the body")
        into += chunk
        size -= len(chunk)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """Status, reason and headers (lower-case names) of the final response, past any 1xx."""
    while True:
        line = await _line(reader)
        if not line:
            raise _NotHttp("closed the connection without an HTTP response")
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            raise _NotHttp(f"answered, but not with HTTP: {line[:60]!r}")
        headers: dict[str, str] = {}
        size = len(line)
        while (line := await _line(reader)) not in (b"\r\n", b"\n"):
            size += len(line)
            name, sep, value = line.decode("latin-1").partition(":")
            if not line.endswith(b"\n") or not sep or size > BODY_LIMIT:
                raise _NotHttp("sent a broken header block")
            headers[name.strip().lower()] = value.strip()
        status = int(match[1])
        if not 100 <= status < 200 or status == 101:
            return status, (match[2] or b"").decode("latin-1").strip(), headers


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], into: bytearray
) -> None:
    """Up to BODY_LIMIT bytes of the body: chunked, by Content-Length, or until the peer closes."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while len(into) < BODY_LIMIT:
            size_text = (await _line(reader)).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _NotHttp(f"sent a broken chunk size: {size_text[:20]!r}") from None
            if size == 0:
                return
            take = min(size, BODY_LIMIT - len(into))
            await _exactly(reader, take, into)
            if take < size:
                return
            await _exactly(reader, 2, bytearray())
        return
    length = headers.get("content-length", "")
    if length.isascii() and length.isdigit():
        await _exactly(reader, min(int(length), BODY_LIMIT), into)
        return
    while len(into) < BODY_LIMIT and (chunk := await reader.read(BODY_LIMIT - len(into))):
        into += chunk


def _request(method: str, path: str, host: str) -> bytes:
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"{method!r} is not an HTTP method.")
    for what, text in (("path", path), ("Host", host)):
        if not text.isascii() or not text.isprintable() or " " in text:
            raise ValueError(f"the {what} {text!r} must be printable ASCII without spaces.")
    if not path.startswith("/"):
        raise ValueError(f"the path {path!r} must start with '/'.")
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sandbox-probe\r\n"
    return f"{head}Accept: */*\r\nConnection: close\r\n\r\n".encode("ascii")


async def probe_http(
    address: str,
    port: int,
    path: str = "/",
    *,
    timeout: float = 2.0,
    expect_status: int | None = None,
    method: str = "GET",
    scheme_host: str | None = None,
    target: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> ProbeResult:
    """One HTTP/1.1 request to a literal loopback address; reads the head and up to 64 KiB of body.

    `scheme_host` is the Host header (the host:port the user wrote, `localhost:8080`); by default
    the literal hostport. Any status is ok unless `expect_status` is given; a mismatch, or an
    answer that is not HTTP, leaves the state OPEN with `expectation_failed`. A body that stops
    short or outlasts the deadline is noted in the detail; the status still counts. latency_ms
    is the time to the end of the response head. Raises ValueError for a bad argument.
    Leaves no connection open (it is aborted once the probe has what it needs). With `tls`,
    the request goes over HTTPS and the certificate must be valid for `address` under it.
    """
    family = _check(address, port, timeout)
    where = format_hostport(address, port)
    request = _request(method, path, scheme_host or where)
    name = target or f"{'https' if tls else 'http'}://{where}{path}"
    start = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    status: int | None = None
    reason, latency, body, note = "", None, bytearray(), ""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _open_stream(address, port, family, tls)
            writer.write(request)
            status, reason, headers = await _read_head(reader)
            latency = _ms(start)
            if method != "HEAD" and status not in (204, 304):
                await _read_body(reader, headers, body)
    except _NotHttp as exc:
        if status is None:
            detail = f"{where} {exc}"
            return ProbeResult(name, address, port, ProbeState.OPEN, None, None, None, detail, True)
        note = f" (the body was cut short: {where} {exc})"
    except TimeoutError as exc:
        if writer is None:
            return _failed(exc, name, address, port, timeout)
        if status is None:
            detail = f"connected to {where}, but no HTTP response within {_seconds(timeout)} s"
            return ProbeResult(name, address, port, ProbeState.TIMEOUT, None, detail=detail)
        note = f" (the body did not finish within {_seconds(timeout)} s)"
    except Exception as exc:
        if status is None:
            if problem := tls_problem(exc, address, port):
                return ProbeResult(name, address, port, ProbeState.ERROR, None, detail=problem)
            return _failed(exc, name, address, port, timeout)
        note = f" (the body was cut short: {exc})"
    finally:
        await _close(writer)
    answer = f"{status} {reason}".rstrip()
    failed = expect_status is not None and status != expect_status
    if failed:
        detail = f"expected status {expect_status}, got {answer} from {where}{note}"
    else:
        detail = f"HTTP {answer} from {where} in {latency:.2f} ms{note}"
    excerpt = _excerpt(body)
    return ProbeResult(
        name, address, port, ProbeState.OPEN, latency, status, excerpt, detail, failed
    )

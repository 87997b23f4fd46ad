"""The probe core: is a loopback address:port reachable, and how (TCP, HTTP, send/expect, names)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from sandbox.errors import ResolveError
from sandbox.net.addresses import format_hostport, loopback_problem

BODY_LIMIT = 64 * 1024  # the most a probe reads of a body, a header block or a send/expect reply
EXCERPT_CHARS = 200
_CLOSE_GRACE = 0.5
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: ([^\r\n]*))?\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The probes take `timeout` themselves (ruff's ASYNC109 would have callers wrap them in
# asyncio.timeout): a probe's deadline is part of its answer, a TIMEOUT result, never an exception.


class ProbeState(StrEnum):
    """What the transport said: something listens, nothing does, or why we could not tell."""

    OPEN = "open"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    UNRESOLVED = "unresolved"
    ERROR = "error"


@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer. `state` is the transport's; `expectation_failed` is set when the
    port is OPEN but what answered is not what was asked for (a status, HTTP at all, a reply)."""

    target: str
    address: str | None
    port: int | None
    state: ProbeState
    latency_ms: float | None
    http_status: int | None = None
    body_excerpt: str | None = None
    detail: str = ""
    expectation_failed: bool = False

    @property
    def ok(self) -> bool:
        """Something listens and it answered as expected."""
        return self.state is ProbeState.OPEN and not self.expectation_failed

    def to_json(self) -> dict[str, object]:
        """The result for `--json`: the fields, `ok`, and `body_excerpt` when there is one."""
        data: dict[str, object] = {
            "target": self.target,
            "address": self.address,
            "port": self.port,
            "state": self.state.value,
            "ok": self.ok,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "http_status": self.http_status,
            "detail": self.detail,
        }
        if self.body_excerpt is not None:
            data["body_excerpt"] = self.body_excerpt
        return data


def _seconds(value: float) -> str:
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _excerpt(data: bytes | bytearray) -> str:
    return bytes(data[: EXCERPT_CHARS * 4]).decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _family(address: str) -> socket.AddressFamily:
    """The family of a literal loopback address. Raises ValueError for a name or an address the
    loopback rule refuses: the probe core never looks names up behind the caller's back, nor
    scans networks."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"{address!r} is not a literal address: resolve() it and probe what it gives."
        ) from None
    problem = loopback_problem(addr, address)
    if problem is not None:
        raise ValueError(problem)
    return socket.AF_INET if addr.version == 4 else socket.AF_INET6


def _check(address: str, port: int, timeout: float) -> socket.AddressFamily:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} is outside 1..65535.")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}.")
    return _family(address)


def _unreachable(address: str, exc: OSError) -> str:
    if ":" in address:
        return f"network unreachable: {address} is not usable; is IPv6 disabled? ({exc.strerror})"
    return f"network unreachable: the kernel has no route to {address} ({exc.strerror})"


def _classify(
    exc: BaseException, address: str | None, port: int | None, timeout: float
) -> tuple[ProbeState, str]:
    """Map a failed connect (or lookup) to a state and one plain sentence."""
    where = format_hostport(address, port) if address and port else (address or "the target")
    if isinstance(exc, TimeoutError):
        return ProbeState.TIMEOUT, (
            f"no answer within {_seconds(timeout)} s: {where} did not accept the connection "
            "(a full listen backlog, or packets dropped)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return ProbeState.REFUSED, f"connection refused: nothing listens on {where}"
    if isinstance(exc, socket.gaierror | UnicodeError):
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        return ProbeState.UNRESOLVED, f"{address} did not resolve: {reason}"
    unreachable = {errno.ENETUNREACH, errno.EHOSTUNREACH}
    if address and ":" in address:  # ::1 where IPv6 is off: no address, or no IPv6 at all
        unreachable |= {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
    if isinstance(exc, OSError) and exc.errno in unreachable and address:
        return ProbeState.UNREACHABLE, _unreachable(address, exc)
    return ProbeState.ERROR, f"probing {where} failed: {exc or type(exc).__name__}"


def _failed(exc: BaseException, name: str, address: str, port: int, timeout: float) -> ProbeResult:
    state, detail = _classify(exc, address, port, timeout)
    return ProbeResult(name, address, port, state, None, detail=detail)


async def _connect(address: str, port: int, family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open_stream(
    address: str, port: int, family: socket.AddressFamily
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await _connect(address, port, family)
    try:
        return await asyncio.open_connection(sock=sock, limit=BODY_LIMIT)
    except BaseException:
        sock.close()
        raise


async def _close(writer: asyncio.StreamWriter | None) -> None:
    """Drop the connection at once: a probe has nothing left to say, and a graceful close can
    wait on a peer that never reads."""
    if writer is None:
        return
    writer.transport.abort()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_GRACE):
            await writer.wait_closed()


async def probe_tcp(
    address: str,
    port: int,
    *,
    timeout: float = 2.0,
    target: str | None = None,
) -> ProbeResult:
    """Connect to a literal loopback address:port and close at once; latency is the connect's.

    Raises ValueError for a name, a non-loopback address or a bad port; never for the network.
    Leaves no connection open.
    """
    family = _check(address, port, timeout)
    name = target or format_hostport(address, port)
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            sock = await _connect(address, port, family)
    except Exception as exc:
        return _failed(exc, name, address, port, timeout)
    latency = _ms(start)
    sock.close()
    detail = f"connected to {format_hostport(address, port)} in {latency:.2f} ms"
    return ProbeResult(name, address, port, ProbeState.OPEN, latency, detail=detail)


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
) -> ProbeResult:
    """One HTTP/1.1 request to a literal loopback address; reads the head and up to 64 KiB of body.

    `scheme_host` is the Host header (the host:port the user wrote, `localhost:8080`); by default
    the literal hostport. Any status is ok unless `expect_status` is given; a mismatch, or an
    answer that is not HTTP, leaves the state OPEN with `expectation_failed`. A body that stops
    short or outlasts the deadline is noted in the detail; the status still counts. latency_ms
    is the time to the end of the response head. Raises ValueError for a bad argument.
    Leaves no connection open (it is aborted once the probe has what it needs).
    """
    family = _check(address, port, timeout)
    where = format_hostport(address, port)
    request = _request(method, path, scheme_host or where)
    name = target or f"http://{where}{path}"
    start = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    status: int | None = None
    reason, latency, body, note = "", None, bytearray(), ""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _open_stream(address, port, family)
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


def _describe(pattern: bytes | re.Pattern[bytes]) -> str:
    return repr(pattern) if isinstance(pattern, bytes) else f"a match for {pattern.pattern!r}"


async def _read_until(
    reader: asyncio.StreamReader, buf: bytearray, pattern: bytes | re.Pattern[bytes], pos: int
) -> int | None:
    """Read into `buf` until `pattern` matches at or after `pos`; the match's end, or None when
    the peer closed or BODY_LIMIT was reached first."""
    while True:
        if isinstance(pattern, bytes):
            found = buf.find(pattern, pos)
            if found >= 0:
                return found + len(pattern)
        elif match := pattern.search(buf, pos):
            return match.end()
        if len(buf) >= BODY_LIMIT or not (chunk := await reader.read(BODY_LIMIT - len(buf))):
            return None
        buf += chunk


async def probe_send_expect(
    address: str,
    port: int,
    *,
    send: bytes | None,
    expect: bytes | re.Pattern[bytes] | None,
    banner: bytes | re.Pattern[bytes] | None = None,
    timeout: float = 2.0,
    target: str | None = None,
) -> ProbeResult:
    """Connect, wait for `banner` if given, send `send`, read until `expect` matches.

    A peer that closes (or sends 64 KiB) without the match leaves the state OPEN with
    `expectation_failed`; silence until the deadline is TIMEOUT. latency_ms is the time to the
    last match (to the connect when nothing is expected); body_excerpt shows what was received.
    Raises ValueError for a bad address, port or timeout. Leaves no connection open.
    """
    family = _check(address, port, timeout)
    where, name = format_hostport(address, port), target or format_hostport(address, port)
    start = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    buf, sent = bytearray(), ""
    waiting: bytes | re.Pattern[bytes] | None = None

    def unmet(pattern: bytes | re.Pattern[bytes]) -> ProbeResult:
        why = "sent 64 KiB" if len(buf) >= BODY_LIMIT else "closed the connection"
        detail = f"{where} {why} without {_describe(pattern)}; received {bytes(buf[:60])!r}"
        excerpt = _excerpt(buf)
        return ProbeResult(name, address, port, ProbeState.OPEN, None, None, excerpt, detail, True)

    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _open_stream(address, port, family)
            latency, pos = _ms(start), 0
            if banner is not None:
                waiting = banner
                if (end := await _read_until(reader, buf, banner, 0)) is None:
                    return unmet(banner)
                pos, latency, waiting = end, _ms(start), None
            if send:
                writer.write(send)
                await writer.drain()
                sent = f" and sent {len(send)} bytes"
            if expect is not None:
                waiting = expect
                if (end := await _read_until(reader, buf, expect, pos)) is None:
                    return unmet(expect)
                latency, waiting = _ms(start), None
    except TimeoutError as exc:
        if writer is None:
            return _failed(exc, name, address, port, timeout)
        what = _describe(waiting) if waiting is not None else "room to send"
        got = f" (received {bytes(buf[:60])!r})" if buf else ""
        detail = f"connected to {where}{sent}, but no {what} within {_seconds(timeout)} s{got}"
        return ProbeResult(
            name, address, port, ProbeState.TIMEOUT, None, body_excerpt=_excerpt(buf), detail=detail
        )
    except Exception as exc:
        return _failed(exc, name, address, port, timeout)
    finally:
        await _close(writer)
    heard = f", then {_describe(expect)}" if expect is not None else ""
    detail = f"connected to {where}{sent}{heard} in {latency:.2f} ms"
    return ProbeResult(name, address, port, ProbeState.OPEN, latency, None, _excerpt(buf), detail)


def _settle(answer: asyncio.Future[list[str]], outcome: list[str] | BaseException) -> None:
    if answer.done():  # the caller stopped waiting (its deadline passed)
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


async def resolve(name: str, port: int, *, timeout: float = 2.0) -> list[str]:
    """The literal addresses `name` resolves to (getaddrinfo, SOCK_STREAM), in the system's order,
    without duplicates; a literal comes back in canonical form without a lookup.

    The lookup runs in a daemon thread of its own: a resolver that hangs past the deadline holds
    neither the caller nor the interpreter's exit (the default executor would hold both); that
    thread is all a timed-out lookup leaves behind, and it ends when the resolver answers.
    Raises ResolveError (state UNRESOLVED, or TIMEOUT past `timeout`); ValueError for bad input.
    """
    if not name or isinstance(port, bool) or not 0 <= port <= 65535 or not timeout > 0:
        raise ValueError(f"cannot resolve {name!r} port {port!r} within {timeout!r} s.")
    for family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            return [socket.inet_ntop(family, socket.inet_pton(family, name))]
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[str]] = loop.create_future()

    def lookup() -> None:
        outcome: list[str] | BaseException
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            outcome = list(dict.fromkeys(str(info[4][0]) for info in infos))
        except Exception as exc:  # handed to the waiting coroutine, which raises it
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, answer, outcome)

    threading.Thread(target=lookup, name=f"resolve {name}", daemon=True).start()
    hint = "check /etc/hosts and the resolver; or probe the literal address (127.x.y.z, [::1])."
    try:
        async with asyncio.timeout(timeout):
            return await answer
    except TimeoutError:
        message = f"{name} did not resolve within {_seconds(timeout)} s."
        raise ResolveError(message, hint, "timeout") from None
    except (OSError, UnicodeError) as exc:
        _, reason = _classify(exc, name, None, timeout)
        raise ResolveError(f"{reason}.", hint, "unresolved") from None


async def probe_all(
    coros: Iterable[Awaitable[ProbeResult]], *, limit: int = 64
) -> list[ProbeResult]:
    """Await every probe with at most `limit` in flight; results in input order.

    Raises ValueError for a limit below 1, or what a probe raised (the others are then cancelled,
    and those never started are closed, so nothing is left pending).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}.")
    gate = asyncio.Semaphore(limit)

    async def run(probe: Awaitable[ProbeResult]) -> ProbeResult:
        started = False
        try:
            async with gate:
                started = True
                return await probe
        finally:
            if not started and asyncio.iscoroutine(probe):
                probe.close()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run(probe)) for probe in coros]
    except ExceptionGroup as failed:  # a probe raised: a bug, so let the caller see it plainly
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _stand_in(last: ProbeResult | None, state: ProbeState, detail: str) -> ProbeResult:
    """A result for a probe that gave none, naming the target of the one before if any."""
    if last is None:
        return ProbeResult("", None, None, state, None, detail=detail)
    return ProbeResult(last.target, last.address, last.port, state, None, detail=detail)


async def wait_ready(
    probe: Callable[[], Awaitable[ProbeResult]],
    *,
    timeout: float,
    interval: float = 0.005,
    max_interval: float = 0.1,
    give_up: Callable[[], str | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Probe until a result is ok or `timeout` passes, backing off from `interval` to
    `max_interval`; returns the last result. Never raises.

    Past the deadline the last result keeps its state and its detail reads "not ready within
    N s: last probe: ...". `give_up()` is asked after each failed probe; a sentence from it
    ("the process exited with code 1") stops at once and leads the detail. Each probe is cut
    short at the deadline (state TIMEOUT). A probe (or give_up) that raises ends the wait, the
    first with state ERROR.
    """
    deadline = clock() + timeout
    pause = interval
    last: ProbeResult | None = None
    while True:
        remaining = deadline - clock()
        try:
            async with asyncio.timeout(remaining if remaining > 0 else None):
                result = await probe()
        except TimeoutError:
            result = _stand_in(last, ProbeState.TIMEOUT, "the probe did not finish in time")
        except Exception as exc:
            return _stand_in(last, ProbeState.ERROR, f"the probe failed: {_text(exc)}")
        if result.ok:
            return result
        last = result
        try:
            reason = give_up() if give_up is not None else None
        except Exception as exc:
            reason = f"give_up() failed: {_text(exc)}"
        if reason:
            return replace(result, detail=f"{reason}; last probe: {result.detail}")
        remaining = deadline - clock()
        if remaining <= 0:
            late = f"not ready within {_seconds(timeout)} s: last probe: {result.detail}"
            return replace(result, detail=late)
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, max_interval)

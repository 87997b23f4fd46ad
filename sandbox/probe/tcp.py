"""TCP probes: connect to a literal loopback address:port, and send/expect over the connection."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import select
import socket
import ssl
import time

from sandbox.net.addresses import format_hostport
from sandbox.probe.endpoint import _check, _failed, _opened
from sandbox.probe.result import BODY_LIMIT, ProbeResult, ProbeState, _excerpt, _ms, _seconds

_CLOSE_GRACE = 0.5


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
    address: str, port: int, family: socket.AddressFamily, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await _connect(address, port, family)
    try:
        if tls is not None:  # the certificate is checked against the literal address
            return await asyncio.open_connection(
                sock=sock, limit=BODY_LIMIT, ssl=tls, server_hostname=address
            )
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


def connect_now(address: str, port: int) -> ProbeResult | None:
    """One connect that is complete as soon as connect() returns, or None (refused, or it
    would have to wait: the caller probes with probe_tcp then). No event loop round trip,
    no timer: a thousand in-process stubs are proven in milliseconds.
    """
    family = _check(address, port, 1.0)
    start = time.perf_counter()
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if not _connected_at_once(sock, address, port):
            return None
    return _opened(format_hostport(address, port), address, port, start)


def prove_listener(listener: socket.socket) -> tuple[ProbeResult | None, list[socket.socket]]:
    """One connect to a listening socket of this process, accepted here at once: proof that
    its address:port takes connections, before any server sees one (a thousand stubs would
    each make a request handler for it, 0.2 ms and 5 KiB apiece).

    Returns the result (None if the connect did not complete at once or never arrived) and
    the connections of others that were accepted on the way, in arrival order: the caller
    hands those to the server, so no client notices.
    """
    blocking = listener.getblocking()
    listener.setblocking(False)
    try:
        return _prove(listener)
    finally:
        listener.setblocking(blocking)


def _prove(listener: socket.socket) -> tuple[ProbeResult | None, list[socket.socket]]:
    address, port = listener.getsockname()[:2]
    start = time.perf_counter()
    others: list[socket.socket] = []
    with socket.socket(listener.family, socket.SOCK_STREAM) as client:
        if not _connected_at_once(client, address, port):
            return None, others
        mine = client.getsockname()[:2]
        while True:
            try:
                conn, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return None, others  # not in the queue (yet): the caller probes over time
            if peer[:2] == mine:
                conn.close()
                break
            others.append(conn)
    return _opened(format_hostport(address, port), address, port, start), others


def _connected_at_once(sock: socket.socket, address: str, port: int) -> bool:
    """Connect `sock` without waiting. On loopback the handshake with a listener runs inside
    connect(): a non-blocking connect says EINPROGRESS, yet the socket is already writable,
    without error."""
    sock.setblocking(False)
    if sock.connect_ex((address, port)) not in (0, errno.EINPROGRESS):
        return False
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0)) and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


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
    result = _opened(name, address, port, start)
    sock.close()
    return result


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

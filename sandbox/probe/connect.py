"""Many TCP connect probes at once without an event loop: `sandbox probe` of a thousand targets.

asyncio costs a task, a timeout scope and several callbacks per connect, and its import alone
takes longer than a thousand loopback connects. Here non-blocking sockets wait in one
selector (epoll on Linux), at most `limit` at once, each with its own deadline. Each answer
is the ProbeResult that `probe_tcp` gives for the same endpoint, worded by the same `_failed`."""

from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from collections.abc import Sequence

from sandbox.probe.endpoint import _check, _failed, _opened
from sandbox.probe.result import ProbeResult

Endpoint = tuple[str, int, str]  # literal address, port, the label the result carries


def connect_all(
    endpoints: Sequence[Endpoint], *, timeout: float = 2.0, limit: int = 64
) -> list[ProbeResult]:
    """`probe_tcp` of every (address, port, label), at most `limit` connecting at once, each
    within `timeout` s of its start; results in input order.

    Raises ValueError, before connecting anywhere, for what `probe_tcp` refuses (a name, a
    non-loopback address, a bad port or timeout) or a limit below 1. Leaves no socket open.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}.")
    families = [_check(address, port, timeout) for address, port, _ in endpoints]
    results: list[ProbeResult | None] = [None] * len(endpoints)
    waiting = deque(range(len(endpoints)))
    flying: dict[int, tuple[int, socket.socket, float]] = {}  # fd -> index, socket, start
    poller = selectors.DefaultSelector()
    try:
        while waiting or flying:
            while waiting and len(flying) < limit:
                index = waiting.popleft()
                started = _start(endpoints[index], families[index], timeout)
                if isinstance(started, ProbeResult):
                    results[index] = started
                else:
                    flying[started[0].fileno()] = (index, *started)
                    poller.register(started[0], selectors.EVENT_WRITE)
            if not flying:
                continue
            first = min(start for _, _, start in flying.values()) + timeout
            for key, _ in poller.select(max(0.0, first - time.perf_counter())):
                index, sock, start = flying.pop(key.fd)
                poller.unregister(sock)
                results[index] = _answer(endpoints[index], sock, start, timeout)
            now = time.perf_counter()
            for fd, (index, sock, start) in list(flying.items()):
                if now - start >= timeout:
                    del flying[fd]
                    poller.unregister(sock)
                    sock.close()
                    address, port, label = endpoints[index]
                    results[index] = _failed(TimeoutError(), label, address, port, timeout)
    finally:
        for _, sock, _ in flying.values():
            sock.close()
        poller.close()
    return [r for r in results if r is not None]


def _start(
    endpoint: Endpoint, family: socket.AddressFamily, timeout: float
) -> ProbeResult | tuple[socket.socket, float]:
    """Begin one connect: the socket and its start, or the result if it ended at once."""
    address, port, label = endpoint
    start = time.perf_counter()
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # out of descriptors: this target's answer, not everyone's
        return _failed(exc, label, address, port, timeout)
    sock.setblocking(False)
    try:
        sock.connect((address, port))
    except (BlockingIOError, InterruptedError):
        return sock, start
    except Exception as exc:
        sock.close()
        return _failed(exc, label, address, port, timeout)
    return _open(endpoint, sock, start)


def _answer(endpoint: Endpoint, sock: socket.socket, start: float, timeout: float) -> ProbeResult:
    """The result of a connect the kernel has finished, one way or the other."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err == 0:
        return _open(endpoint, sock, start)
    sock.close()
    address, port, label = endpoint
    # Worded as asyncio's sock_connect words it, so a detail reads as probe_tcp's does.
    peer = (address, port) if sock.family == socket.AF_INET else (address, port, 0, 0)
    return _failed(OSError(err, f"Connect call failed {peer}"), label, address, port, timeout)


def _open(endpoint: Endpoint, sock: socket.socket, start: float) -> ProbeResult:
    address, port, label = endpoint
    result = _opened(label, address, port, start)
    sock.close()
    return result

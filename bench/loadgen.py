"""Load one URL on loopback for a bounded time: wrk when installed, else a Python generator.

The Python generator keeps `connections` keep-alive connections busy with one request each
in flight (like wrk, no pipelining), bounded by `duration` and by `max_requests`. On two
cores it is itself the bottleneck, so its req/s is a lower bound of the server's.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
MAX_DURATION = 10.0  # the brief: no load run longer than 10 s


@dataclass
class LoadResult:
    """One load run: throughput, tail latency, and whatever went wrong."""

    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int = 0
    errors: int = 0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    url: str,
    *,
    duration: float,
    connections: int = 50,
    threads: int = 2,
    tool: str = "auto",
    max_requests: int = 2_000_000,
) -> LoadResult:
    """One bounded run against `url` (loopback only) with wrk or the Python generator.

    Raises ValueError for a URL that is not on 127.0.0.0/8, RuntimeError if wrk fails.
    """
    host = urlsplit(url).hostname or ""
    if not host.startswith("127."):
        raise ValueError(f"{url} is not on loopback; the benchmarks only load 127.0.0.0/8")
    duration = min(duration, MAX_DURATION)
    if tool == "wrk" or (tool == "auto" and have_wrk()):
        return _wrk(url, duration, connections, threads)
    return asyncio.run(_python_load(url, duration, connections, max_requests))


def _wrk(url: str, duration: float, connections: int, threads: int) -> LoadResult:
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--latency", "--timeout", "2s", url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False)
    out = proc.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if proc.returncode != 0 or rps is None or total is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {out}{proc.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    seconds = float(total.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}.get(total.group(3), 1.0)
    return LoadResult(
        tool="wrk",
        requests=int(total.group(1)),
        seconds=seconds,
        rps=float(rps.group(1)),
        p50_ms=_wrk_percentile(out, "50%"),
        p99_ms=_wrk_percentile(out, "99%"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(x) for x in errors.groups()) if errors else 0,
    )


def _wrk_percentile(out: str, which: str) -> float | None:
    found = re.search(rf"^\s+{re.escape(which)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else None


class _Stats:
    def __init__(self, deadline: float, max_requests: int) -> None:
        self.deadline = deadline
        self.max_requests = max_requests
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.errors = 0
        self.last = 0.0

    def more(self, now: float) -> bool:
        return now < self.deadline and len(self.latencies) < self.max_requests


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send, read one whole response, record, send again."""

    def __init__(self, request: bytes, stats: _Stats, done: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.done = done
        self.buffer = b""
        self.need: int | None = None
        self.status = 0
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            if self.need is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
                if length is None:  # no length: keep-alive is impossible, count it and stop
                    self.stats.errors += 1
                    self.transport.close()
                    return
                self.status = int(self.buffer[9:12])
                self.need = end + 4 + int(length.group(1))
            if len(self.buffer) < self.need:
                return
            self.buffer = self.buffer[self.need :]
            self.need = None
            now = time.perf_counter()
            self.stats.latencies.append(now - self.sent)
            self.stats.last = now
            if not 200 <= self.status < 300:
                self.stats.non_2xx += 1
            if not self.stats.more(now):
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None or self.need is not None:
            self.stats.errors += 1
        if not self.done.done():
            self.done.set_result(None)


async def _python_load(
    url: str, duration: float, connections: int, max_requests: int
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    path = parts.path or "/"
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    stats = _Stats(start + duration, max_requests)
    futures: list[asyncio.Future[None]] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for _ in range(connections):
            done: asyncio.Future[None] = loop.create_future()
            try:
                transport, _protocol = await loop.create_connection(
                    lambda d=done: _Connection(request, stats, d), host, port
                )
            except OSError:
                stats.errors += 1
                continue
            transports.append(transport)
            futures.append(done)
        # Bounded: every connection stops at the deadline; a stalled server is cut off after.
        async with asyncio.timeout(duration + 5):
            await asyncio.gather(*futures)
    except TimeoutError:
        stats.errors += 1
    finally:
        for transport in transports:
            transport.close()
    elapsed = (stats.last or time.perf_counter()) - start
    ordered = sorted(stats.latencies)
    count = len(ordered)

    def pct(q: float) -> float | None:
        return ordered[min(count - 1, int(q * count))] * 1000 if count else None

    return LoadResult(
        tool="python",
        requests=count,
        seconds=elapsed,
        rps=count / elapsed if elapsed > 0 else 0.0,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        non_2xx=stats.non_2xx,
        errors=stats.errors,
    )

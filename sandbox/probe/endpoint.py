"""Before a probe and after a failed one: is the endpoint a literal loopback address:port, and
what does a failed connect mean, in one sentence (no asyncio here: `connect` needs none)."""

from __future__ import annotations

import errno
import ipaddress
import socket

from sandbox.net.addresses import format_hostport, loopback_problem
from sandbox.probe.result import ProbeResult, ProbeState, _ms, _seconds


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


def _opened(name: str, address: str, port: int, start: float) -> ProbeResult:
    """The OPEN result of a connect begun at `start` (perf_counter) that just completed."""
    latency = _ms(start)
    detail = f"connected to {format_hostport(address, port)} in {latency:.2f} ms"
    return ProbeResult(name, address, port, ProbeState.OPEN, latency, detail=detail)

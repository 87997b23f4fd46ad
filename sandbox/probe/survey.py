"""Probe many targets: expand each to literal endpoints, probe them all, explain refusals."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sandbox.errors import UsageError
from sandbox.net.addresses import format_hostport
from sandbox.net.listeners import Listener, SocketTable
from sandbox.net.listening import read_tcp_listeners
from sandbox.probe.connect import connect_all
from sandbox.probe.result import ProbeResult, ProbeState
from sandbox.probe.targets import (
    Target,
    canonical,
    check_loopback,
    expand,
    is_literal,
    parse_target,
)

if TYPE_CHECKING:
    import ssl

Named = Callable[[str], list[tuple[str, str, int]]]
_NAMED = 3  # listeners named in a refused result's detail


def _no_names(name: str) -> list[tuple[str, str, int]]:
    raise UsageError(f"{name!r} is neither host:port nor a URL.", "Write 127.0.0.5:8080.")


async def probe_targets(
    texts: list[str],
    *,
    timeout: float,
    named: Named = _no_names,
    table: Callable[[], SocketTable] | None = None,
    tls: ssl.SSLContext | None = None,
) -> list[ProbeResult]:
    """Probe every target; refused results say what listens on that port elsewhere.

    `named` turns a bare name (a profile or a running sandbox) into (label, address, port)
    triples; the caller decides where those come from, so probing never reads state itself.
    `table` reads the socket table (default: the machine's). `tls` is what https:// targets
    trust (default: the system's CAs). Raises UsageError for a target that is not loopback or
    cannot be parsed.
    """
    from sandbox.probe import probe_all, probe_tcp  # asyncio's: not for probe_literals

    jobs: list[Awaitable[ProbeResult]] = []
    for text in texts:
        target = parse_target(text)  # raises TargetError, a UsageError naming the text
        if target.kind == "name":
            jobs.extend(
                probe_tcp(address, port, timeout=timeout, target=label)
                for label, address, port in named(text)
            )
            continue
        endpoints = await expand(target, timeout=timeout)
        for address, port in endpoints:
            label = text if len(endpoints) == 1 else f"{text} -> {format_hostport(address, port)}"
            jobs.append(_job(target, address, port, label, timeout, tls))
    return _explained(await probe_all(jobs), table)


def probe_literals(
    targets: list[Target], *, timeout: float, table: Callable[[], SocketTable] | None = None
) -> list[ProbeResult]:
    """`probe_targets` for parsed HOST:PORT targets whose host is a literal address: the same
    results, probed without an event loop (`connect.connect_all`).

    Raises ValueError for any other target (a URL, a name, a host name to resolve).
    """
    endpoints = []
    for target in targets:
        literal = target.host is not None and is_literal(target.host)
        if target.kind != "hostport" or target.host is None or target.port is None or not literal:
            raise ValueError(f"{target.text} is not a literal HOST:PORT target.")
        check_loopback(target.host)
        endpoints.append((canonical(target.host), target.port, target.text))
    return _explained(connect_all(endpoints, timeout=timeout), table)


def _explained(
    results: list[ProbeResult], table: Callable[[], SocketTable] | None
) -> list[ProbeResult]:
    """Refused results with what the socket table knows about their port (read only if needed)."""
    if not any(r.state is ProbeState.REFUSED for r in results):
        return results
    listeners = table() if table is not None else read_tcp_listeners()
    # Grouped by port once: a thousand refusals must not each scan the whole table.
    by_port: dict[int, list[Listener]] = {}
    for listener in listeners:
        by_port.setdefault(listener.port, []).append(listener)
    quoted: set[int] = set()
    return [
        explain_refused(r, by_port.get(r.port, []), quoted) if r.port is not None else r
        for r in results
    ]


def _job(
    target: Target,
    address: str,
    port: int,
    label: str,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> Awaitable[ProbeResult]:
    from sandbox.probe import probe_http, probe_tcp

    if target.kind == "url":
        if target.scheme == "https" and tls is None:
            import ssl

            tls = ssl.create_default_context()
        return probe_http(
            address,
            port,
            target.path,
            timeout=timeout,
            target=label,
            scheme_host=target.hostport,
            tls=tls if target.scheme == "https" else None,
        )
    return probe_tcp(address, port, timeout=timeout, target=label)


def neighbours(
    address: str, port: int, table: SocketTable, *, limit: int | None = None
) -> list[Listener]:
    """Listeners on the same port at another address: the usual cause of a refused connection.

    The first `limit` of them (all by default), in table order."""
    here = ipaddress.ip_address(address)
    found: list[Listener] = []
    for x in table:
        if x.port == port and x.protocol == "tcp" and x.address != here:
            found.append(x)
            if len(found) == limit:
                break  # a thousand refusals next to a thousand listeners: not a million checks
    return found


def explain_refused(
    result: ProbeResult, table: SocketTable, quoted: set[int] | None = None
) -> ProbeResult:
    """Add what the socket table knows to a refused result ("... but 127.0.0.63:8080 does").

    An owner's command line is quoted once per `quoted` set (then only its pid), so a
    thousand refusals near one busy program do not repeat it a thousand times."""
    if result.state is not ProbeState.REFUSED or result.address is None or result.port is None:
        return result
    found = neighbours(result.address, result.port, table, limit=_NAMED)
    if not found:
        return result
    others = ", ".join(_holder(x, quoted) for x in found)
    where = format_hostport(result.address, result.port)
    detail = f"nothing listens on {where}, but {others} does: wrong address?"
    from dataclasses import replace

    return replace(result, detail=detail)


def _holder(entry: Listener, quoted: set[int] | None) -> str:
    owner = entry.owner
    if owner is None:
        return entry.hostport
    if owner.pid is not None and quoted is not None:
        if owner.pid in quoted:
            return f"{entry.hostport} (pid {owner.pid}, as above)"
        quoted.add(owner.pid)
    return f"{entry.hostport} ({owner.describe()})"

"""`sandbox probe` as a function: expand targets to literal endpoints, probe, explain refusals."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable
from pathlib import Path

from sandbox.errors import ProfileNotFound, UsageError
from sandbox.net.addresses import format_hostport
from sandbox.net.table import Listener, SocketTable, read_table
from sandbox.probe import ProbeResult, ProbeState, probe_all, probe_http, probe_tcp
from sandbox.targets import Target, expand, parse_target


async def probe_targets(
    texts: list[str], *, timeout: float, state_root: Path | None = None
) -> list[ProbeResult]:
    """Probe every target; refused results say what listens on that port elsewhere.

    Raises UsageError for a target that is not loopback or cannot be parsed.
    """
    jobs: list[Awaitable[ProbeResult]] = []
    for text in texts:
        target = parse_target(text)  # raises TargetError, a UsageError naming the text
        if target.kind == "name":
            jobs.extend(_profile_jobs(text, timeout, state_root))
            continue
        endpoints = await expand(target, timeout=timeout)
        for address, port in endpoints:
            label = text if len(endpoints) == 1 else f"{text} -> {format_hostport(address, port)}"
            jobs.append(_job(target, address, port, label, timeout))
    results = await probe_all(jobs)
    if any(r.state is ProbeState.REFUSED for r in results):
        # Grouped by port once: a thousand refusals must not each scan the whole table.
        by_port: dict[int, list[Listener]] = {}
        for listener in read_table(protocols=("tcp",)):
            by_port.setdefault(listener.port, []).append(listener)
        results = [
            explain_refused(r, by_port.get(r.port, [])) if r.port is not None else r
            for r in results
        ]
    return results


def _job(
    target: Target, address: str, port: int, label: str, timeout: float
) -> Awaitable[ProbeResult]:
    if target.kind == "url":
        return probe_http(
            address, port, target.path, timeout=timeout, target=label, scheme_host=target.hostport
        )
    return probe_tcp(address, port, timeout=timeout, target=label)


def _profile_jobs(
    name: str, timeout: float, state_root: Path | None
) -> list[Awaitable[ProbeResult]]:
    """A profile name: probe where its running sandbox is, else where its plan would put it."""
    from sandbox.runtime.state import StateDir

    if state_root is not None:
        record = StateDir(state_root, name).read()
        if record is not None:
            return [
                probe_tcp(s.address, s.port, timeout=timeout, target=f"{name}/{s.name}")
                for s in record.services
            ]
    from sandbox.plan import make_plan
    from sandbox.profile.loader import load_profile

    try:
        profile = load_profile(name)
    except ProfileNotFound:
        raise UsageError(
            f"{name!r} is neither host:port, a URL, nor a profile name.",
            "Write 127.0.0.5:8080, [::1]:9000, localhost:5432 or http://127.0.0.9:8000/health.",
        ) from None
    plan = make_plan(profile)
    return [
        probe_tcp(str(s.address), s.port, timeout=timeout, target=f"{name}/{s.name}")
        for s in plan.services
        if s.port
    ]


def neighbours(address: str, port: int, table: SocketTable) -> list[Listener]:
    """Listeners on the same port at another address: the usual cause of a refused connection."""
    here = ipaddress.ip_address(address)
    return [x for x in table if x.port == port and x.protocol == "tcp" and x.address != here]


def explain_refused(result: ProbeResult, table: SocketTable) -> ProbeResult:
    """Add what the socket table knows to a refused result ("... but 127.0.0.63:8080 does")."""
    if result.state is not ProbeState.REFUSED or result.address is None or result.port is None:
        return result
    found = neighbours(result.address, result.port, table)
    if not found:
        return result
    others = ", ".join(
        f"{x.hostport} ({x.owner.describe()})" if x.owner else x.hostport for x in found[:3]
    )
    where = format_hostport(result.address, result.port)
    detail = f"nothing listens on {where}, but {others} does: wrong address?"
    from dataclasses import replace

    return replace(result, detail=detail)

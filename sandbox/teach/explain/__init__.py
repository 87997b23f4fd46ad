"""`sandbox explain`: can an endpoint be bound now, who holds it under which rule, the ways out.

This module gathers the facts (endpoints, the socket table, a real bind, a probe, what
localhost resolves to); model holds the results as data, sentences says them, ways_out
finds the alternatives. The output layer (sandbox.output.explain) prints them.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from sandbox.errors import ProfileNotFound, ResolveError, UsageError
from sandbox.net.addresses import format_hostport, is_loopback
from sandbox.net.table import read_bindv6only, read_table
from sandbox.probe import ProbeState, probe_tcp, resolve
from sandbox.probe.survey import neighbours
from sandbox.probe.targets import expand, parse_target
from sandbox.teach.explain.model import (
    BindAttempt,
    Explanation,
    LocalhostAddress,
    TableReader,
    _Endpoint,
    _Facts,
    _try_bind,
)
from sandbox.teach.explain.sentences import (
    _bind_sentences,
    _localhost_sentence,
    _probe_sentence,
    _verdict,
)
from sandbox.teach.explain.ways_out import _alternatives, _ways_out

__all__ = ["Explanation", "explain"]


async def explain(
    target: str,
    *,
    state_root: Path | None,
    table_reader: TableReader = read_table,
    timeout: float = 1.0,
) -> list[Explanation]:
    """Explain `ADDRESS:PORT`, `NAME/SERVICE` of a running sandbox, or each service of a profile.

    Raises UsageError for a target that is not loopback, cannot be parsed, or names no running
    service nor profile; ProfileError for an invalid profile. Every socket it opens (real bind
    attempts, probes) is closed before it returns.
    """
    endpoints = await _endpoints(target.strip(), state_root, timeout)
    table = list(table_reader())
    facts = _Facts(table_reader, table, read_bindv6only(), _ours(state_root), timeout)
    return [await _explain_one(ep, facts) for ep in endpoints]


async def _endpoints(text: str, state_root: Path | None, timeout: float) -> list[_Endpoint]:
    if _names_a_service(text):
        return [_record_endpoint(text, state_root)]
    parsed = parse_target(text)  # TargetError (a UsageError) for anything not loopback
    if parsed.kind == "name":
        return _profile_endpoints(text)
    pairs = await expand(parsed, timeout=timeout)
    many = len(pairs) > 1
    return [
        _Endpoint(
            f"{text} -> {format_hostport(a, p)}" if many else text, ipaddress.ip_address(a), p
        )
        for a, p in pairs
    ]


def _names_a_service(text: str) -> bool:
    """NAME/SERVICE, as opposed to the path of a profile file."""
    if "/" not in text or ":" in text or text.endswith((".yaml", ".yml")):
        return False
    return not Path(text).exists()


def _record_endpoint(text: str, state_root: Path | None) -> _Endpoint:
    from sandbox.runtime.state import StateDir

    name, _, service = text.partition("/")
    if state_root is None:
        raise UsageError(
            f"{text} names a service of a running sandbox, but no state folder is known.",
            "Set SANDBOX_STATE_DIR, or explain ADDRESS:PORT.",
        )
    record = StateDir(state_root, name).read()
    if record is None:
        raise UsageError(
            f'No sandbox named "{name}" is running: {state_root} holds no record of it.',
            "`sandbox status` lists running sandboxes; or explain ADDRESS:PORT.",
        )
    found = record.service(service)
    if found is None:
        names = ", ".join(s.name for s in record.services) or "none"
        raise UsageError(f'Sandbox "{name}" has no service "{service}"; it has: {names}.')
    address = ipaddress.ip_address(found.address)
    if not is_loopback(address):
        raise UsageError(f"The record of {text} names {address}, which is not loopback.")
    return _Endpoint(text, address, found.port, profile=record.profile)


def _profile_endpoints(text: str) -> list[_Endpoint]:
    from sandbox.plan import make_plan
    from sandbox.profile.loader import load_profile

    try:
        profile = load_profile(text)
    except ProfileNotFound as exc:
        message = (
            f"{text!r} is neither ADDRESS:PORT, NAME/SERVICE of a running sandbox, nor a profile."
        )
        raise UsageError(message, exc.hint or "Write 127.0.0.5:8080 or [::1]:9000.") from exc
    plan = make_plan(profile)  # the addresses as declared: explain says what is in the way
    taken = frozenset(s.address for s in plan.services)
    return [
        _Endpoint(f"{profile.name}/{s.name}", s.address, s.port, profile.name, plan.pool, taken)
        for s in plan.services
    ]


def _ours(state_root: Path | None) -> dict[int, str]:
    """Live pids (supervisors and programs) of recorded sandboxes -> the sandbox's name."""
    from sandbox.runtime.status import recorded_pids

    return recorded_pids(state_root, programs=True) if state_root is not None else {}


async def _explain_one(ep: _Endpoint, facts: _Facts) -> Explanation:
    where = format_hostport(ep.address, ep.port)
    if ep.port == 0:
        text = (
            f"{ep.label} asks for any port (port: auto): the kernel picks a free one on "
            f"{ep.address} when the service binds, so nothing can be in its way."
        )
        return Explanation(
            ep.label, where, str(ep.address), 0, "any-port", True, (text,), BindAttempt(True)
        )
    found = facts.blocking(ep.address, ep.port)
    attempt = _try_bind(ep.address, ep.port)
    in_use = attempt.errno == "EADDRINUSE"
    agrees = True
    if (attempt.ok or in_use) and bool(found) != in_use:
        facts.table = list(facts.reader())  # one more look before saying the table was wrong
        found = facts.blocking(ep.address, ep.port)
        agrees = bool(found) == in_use
    probe = await probe_tcp(str(ep.address), ep.port, timeout=facts.timeout, target=ep.label)
    held = {b.listener for b in found}
    near = tuple(n for n in neighbours(str(ep.address), ep.port, facts.table) if n not in held)
    local, local_error = await _localhost(ep.port, facts)
    verdict = _verdict(attempt, found, probe, near)
    sentences = [
        *_bind_sentences(where, ep, attempt, found, agrees, facts),
        _probe_sentence(where, ep, probe, attempt.ok, found, near, facts),
        _localhost_sentence(where, ep, local, local_error),
    ]
    free = _alternatives(ep, attempt, found, facts)
    owners = [b.listener.owner for b in found] + [n.owner for n in near]
    ours = {o.pid: facts.ours[o.pid] for o in owners if o and o.pid in facts.ours}
    return Explanation(
        target=ep.label,
        endpoint=where,
        address=str(ep.address),
        port=ep.port,
        verdict=verdict,
        bindable=attempt.ok,
        sentences=tuple(sentences),
        bind=attempt,
        table_agrees=agrees,
        blockers=tuple(found),
        probe=probe,
        neighbours=near,
        localhost=local,
        localhost_error=local_error,
        ways_out=tuple(_ways_out(where, ep, verdict, attempt, found, near, facts, free)),
        free_address=None if free[0] is None else str(free[0]),
        free_port=free[1],
        ours=tuple(ours.items()),
    )


async def _localhost(port: int, facts: _Facts) -> tuple[tuple[LocalhostAddress, ...], str | None]:
    try:
        addresses = await resolve("localhost", port, timeout=facts.timeout)
    except ResolveError as exc:
        return (), exc.message
    found = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        if not is_loopback(address):
            found.append(LocalhostAddress(text, None))
            continue
        answer = await probe_tcp(text, port, timeout=facts.timeout)
        serving = facts.blocking(address, port)  # a listener that blocks an address answers it
        via = serving[0].listener if serving else None
        found.append(
            LocalhostAddress(
                text,
                answer.state is ProbeState.OPEN,
                via.hostport if via else None,
                facts.who(via.owner) if via else None,
            )
        )
    return tuple(found), None

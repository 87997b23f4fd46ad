"""What `explain` says: the verdict, and one plain sentence per fact it found."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sandbox.net.addresses import format_hostport
from sandbox.net.conflicts import Blocker
from sandbox.net.listeners import Listener
from sandbox.probe import ProbeResult, ProbeState
from sandbox.teach.explain.model import _VERDICTS, BindAttempt, LocalhostAddress, _Endpoint, _Facts


def _verdict(
    attempt: BindAttempt, found: list[Blocker], probe: ProbeResult, near: Sequence[Listener]
) -> str:
    if attempt.ok:
        return "refused-neighbour" if near and probe.state is ProbeState.REFUSED else "free"
    if attempt.errno == "EADDRINUSE":
        return _VERDICTS[found[0].rule] if found else "in-use-unlisted"
    return {"EACCES": "permission-denied", "EADDRNOTAVAIL": "address-unavailable"}.get(
        attempt.errno or "", "bind-failed"
    )


def _bind_sentences(
    where: str,
    ep: _Endpoint,
    attempt: BindAttempt,
    found: list[Blocker],
    agrees: bool,
    facts: _Facts,
) -> list[str]:
    if attempt.ok:
        text = f"{where} can be bound now: a real bind succeeded (and was closed at once)"
        if agrees:
            return [text + ", and the socket table shows no listener that holds it."]
        held = ", ".join(b.listener.hostport for b in found)
        return [
            f"{text}, although the socket table lists {held} as holding it. Trust the bind: "
            "that listener closed while we looked, or it is IPv6-only where the table "
            "could not tell."
        ]
    if attempt.errno != "EADDRINUSE":
        return [f"A real bind failed with {attempt.errno}: {attempt.message}"]
    if not found:
        return [
            f"{where} cannot be bound now: a real bind failed with EADDRINUSE, yet the "
            "socket table shows no listener that holds it. Trust the bind: a socket can hold "
            "an address and port without listening (a server between bind() and listen(), "
            "or a client that bound before connecting), and the table lists only listeners."
        ]
    main = found[0]
    out = [f"{where} cannot be bound now: it is {main.reason}. A real bind agreed (EADDRINUSE)."]
    pid = main.listener.owner.pid if main.listener.owner else None
    if pid is not None and pid in facts.ours:
        out.append(f'That program is sandbox "{facts.ours[pid]}" of ours.')
    out.append(_rule_sentence(main, ep.port))
    out.extend(f"It is also {other.reason}." for other in found[1:])
    return out


def _rule_sentence(b: Blocker, port: int) -> str:
    held = b.listener.hostport
    if b.rule == "exact":
        return (
            "Rule exact: one address and port take one listener; SO_REUSEADDR on both does "
            "not change that."
        )
    if b.rule == "mapped":
        return (
            f"Rule mapped: {held} is an IPv4 address seen through an IPv6 socket, so it "
            "holds that IPv4 address and port."
        )
    if b.rule == "dual-stack":
        return (
            f"Rule dual-stack: {held} did not set IPV6_V6ONLY (net.ipv6.bindv6only is 0 by "
            f"default), so it accepts IPv4 too and takes port {port} on every 127.x address."
        )
    if isinstance(b.listener.address, ipaddress.IPv6Address) and not b.listener.address.ipv4_mapped:
        return f"Rule wildcard: {held} takes port {port} on every IPv6 address, ::1 included."
    return (
        f"Rule wildcard: {held} takes port {port} on every IPv4 address, 127.x included, so "
        f"no 127.x:{port} can be bound beside it."
    )


def _probe_sentence(
    where: str,
    ep: _Endpoint,
    probe: ProbeResult,
    bindable: bool,
    found: list[Blocker],
    near: Sequence[Listener],
    facts: _Facts,
) -> str:
    if probe.state is ProbeState.OPEN:
        ms = f"{probe.latency_ms or 0:.2f} ms"
        if not found:
            return f"A connection to {where} was accepted in {ms}: something began listening there."
        via = found[0].listener
        through = "" if via.hostport == where else f" through {via.hostport}"
        return (
            f"A connection to {where} was accepted in {ms}: a client that dials {where} "
            f"talks to {facts.who(via.owner)}{through}."
        )
    if probe.state is not ProbeState.REFUSED:
        return f"The probe of {where} found: {probe.detail}."
    if near:
        listed = "; ".join(f"{n.hostport}, held by {facts.who(n.owner)}" for n in near[:3])
        text = (
            f"A connection to {where} was refused: nothing listens on that address, but port "
            f"{ep.port} has a listener elsewhere: {listed}. Wrong address?"
        )
        for n in near:
            if n.is_wildcard and n.address.version == 4 and ep.address.version == 6:
                text += f" {n.hostport} means every IPv4 address, and ::1 is not one."
            elif n.is_wildcard and n.address.version == 6 and ep.address.version == 4:
                text += f" {n.hostport} is IPv6-only (IPV6_V6ONLY), so it never answers on 127.x."
        return text
    if not bindable:
        return f"A connection to {where} was refused: the socket that holds it is not listening."
    return f"A connection to {where} was refused: nothing listens on port {ep.port} at any address."


def _localhost_sentence(
    where: str, ep: _Endpoint, local: Sequence[LocalhostAddress], error: str | None
) -> str:
    port = ep.port
    if error or not local:
        why = f" ({error})" if error else ""
        return f"localhost does not resolve here{why}: a client that dials it reaches nothing."
    states = []
    for a in local:
        if a.listening is None:
            states.append(f"{a.address} is not loopback at all")
        elif a.listening:
            via = f" by {a.owner} on {a.listener}" if a.listener else ""
            states.append(f"{a.address} is answered{via}")
        else:
            states.append(f"{a.address} has no listener")
    order = " then ".join(a.address for a in local) + (" only" if len(local) == 1 else "")
    text = f"localhost resolves to {order} here; on port {port}, {', '.join(states)}."
    first = next((a for a in local if a.listening), None)
    if first is None:
        return f"{text} A client that dials localhost:{port} is refused."
    if ipaddress.ip_address(first.address) == ep.address:
        return f"{text} A client that dials localhost:{port} reaches {where} itself."
    reached = format_hostport(first.address, port)
    return (
        f"{text} A client that dials localhost:{port} reaches {reached}, not {where}: dial "
        "the literal address."
    )

"""The ways out of a taken endpoint: another address, another port, or stop the holder."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator, Sequence

from sandbox.net.addresses import IPAddress, format_hostport, pool_addresses
from sandbox.net.conflicts import Blocker, moves_that_help, next_free_port
from sandbox.net.listeners import Listener
from sandbox.teach.explain.model import (
    _SCAN,
    _TRIES,
    _V6,
    BindAttempt,
    _Endpoint,
    _Facts,
    _try_bind,
)


def _alternatives(
    ep: _Endpoint, attempt: BindAttempt, found: list[Blocker], facts: _Facts
) -> tuple[IPAddress | None, int | None]:
    """A free address for the same port and a free port on the same address, each proven by a
    real bind; only for an endpoint in use."""
    if attempt.errno != "EADDRINUSE":
        return None, None
    rules = {b.rule for b in found}
    address: IPAddress | None = None
    if ep.address.version == 6 or not rules & {"wildcard", "dual-stack"}:
        address = _first_free(_candidates(ep), ep.port, facts)
    elif "dual-stack" not in rules and facts.free(_V6, ep.port):
        address = _V6  # 0.0.0.0 leaves IPv6 alone; a dual-stack [::] holds both families
    return address, _other_port(ep, facts)


def _ways_out(
    where: str,
    ep: _Endpoint,
    verdict: str,
    attempt: BindAttempt,
    found: list[Blocker],
    near: Sequence[Listener],
    facts: _Facts,
    free: tuple[IPAddress | None, int | None],
) -> list[str]:
    if verdict == "refused-neighbour":
        return [
            f"Dial {_dialable(near[0])} instead, where {facts.who(near[0].owner)} listens; "
            f"or start your service on {where}."
        ]
    if attempt.errno != "EADDRINUSE":
        return [attempt.hint] if attempt.hint and not attempt.ok else []
    port, ways = ep.port, []
    for owner in dict.fromkeys(b.listener.owner for b in found):
        pid = owner.pid if owner else None
        if pid is not None and pid in facts.ours:
            name = facts.ours[pid]
            ways.append(f'Stop sandbox "{name}" of ours, which holds it: `sandbox down {name}`.')
        elif owner is not None and pid is not None:
            ways.append(f"Stop its owner, {facts.who(owner)}: `kill {pid}`.")
        else:
            ways.append(
                f"Stop its owner, whom this account cannot see: `sudo ss -ltnp 'sport = "
                f":{port}'` names it."
            )
    if not found:
        ways.append(
            f"Find the socket: `sudo ss -tanp 'sport = :{port}'` lists every socket on "
            f"port {port}, bound-but-not-listening ones included; stop its owner."
        )
    ways.extend(_other_address(ep, found, free[0]))
    if free[1] is not None:
        there = format_hostport(ep.address, free[1])
        ways.append(f"Use another port: {there} is free (a real bind just succeeded there).")
    moves = moves_that_help(ep.address, (b.rule for b in found))
    options = " or ".join(f"`--on-conflict {m}`" for m in moves)
    if ep.profile:
        ways.append(f"Or let sandbox move it: `sandbox up {ep.profile}` with {options}.")
    else:
        ways.append(f"In a profile, {options} makes `sandbox plan` and `sandbox up` move it.")
    return ways


def _dialable(entry: Listener) -> str:
    """An address:port a client can dial to reach `entry` (a wildcard is no destination)."""
    mapped = entry.address.ipv4_mapped if isinstance(entry.address, ipaddress.IPv6Address) else None
    if entry.is_wildcard:
        v6 = entry.address.version == 6 and not mapped
        return format_hostport("::1" if v6 else "127.0.0.1", entry.port)
    return format_hostport(mapped or entry.address, entry.port)


def _other_address(ep: _Endpoint, found: list[Blocker], free: IPAddress | None) -> list[str]:
    port = ep.port
    there = f"{format_hostport(free, port)} is free (a real bind just succeeded)" if free else ""
    wide = [b.listener.hostport for b in found if b.rule in ("wildcard", "dual-stack")]
    if ep.address.version == 4 and wide:
        if any(b.rule == "dual-stack" for b in found):
            return [
                f"Another address cannot help: {wide[0]} holds port {port} on every 127.x "
                "address and on ::1."
            ]
        tail = f" ::1 is not an IPv4 address, so {there}." if free else ""
        return [
            f"Another 127.x address cannot help: {wide[0]} holds port {port} on all of them.{tail}"
        ]
    if free is None:
        return []
    if ep.address.version == 6:
        return [
            f"::1 is the only IPv6 loopback address, but an IPv4 one can take the service: {there}."
        ]
    return [f"Use another address of 127/8: {there}."]


def _candidates(ep: _Endpoint) -> Iterator[IPAddress]:
    if ep.pool is not None:
        return (a for a in pool_addresses(ep.pool) if a != ep.address and a not in ep.taken)
    if ep.address.version == 6:
        return pool_addresses(ipaddress.IPv4Network("127.0.0.0/16"))
    near = ipaddress.IPv4Network(f"{ep.address}/16", strict=False)
    after = (a for a in pool_addresses(near) if a > ep.address)
    return itertools.chain(after, (a for a in pool_addresses(near) if a < ep.address))


def _first_free(candidates: Iterator[IPAddress], port: int, facts: _Facts) -> IPAddress | None:
    tries = 0
    for address in itertools.islice(candidates, _SCAN):
        if facts.blocking(address, port):
            continue
        if _try_bind(address, port).ok:
            return address
        tries += 1
        if tries >= _TRIES:
            break
    return None


def _other_port(ep: _Endpoint, facts: _Facts) -> int | None:
    start = ep.port + 1
    for _ in range(_TRIES):
        if start > 65535:
            return None
        port = next_free_port(ep.address, start, facts.table, default_v6only=facts.v6only)
        if port is None or _try_bind(ep.address, port).ok:
            return port
        start = port + 1
    return None

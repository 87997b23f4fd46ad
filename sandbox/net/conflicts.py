"""Which listeners keep an address:port from binding: the Linux rules, pure, with a fix each."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from sandbox.net.addresses import IPAddress, format_hostport
from sandbox.net.listeners import Listener, SocketTable

Rule = Literal["exact", "wildcard", "dual-stack", "mapped"]


@dataclass(frozen=True)
class Blocker:
    """A listener that keeps the wanted address:port from binding, why, and what to do."""

    listener: Listener
    rule: Rule
    reason: str
    fix: str


def blockers(
    address: IPAddress,
    port: int,
    table: SocketTable,
    *,
    protocol: Literal["tcp", "udp"] = "tcp",
    default_v6only: bool = False,
) -> list[Blocker]:
    """Every listener in `table` that keeps `address:port` from binding, by the Linux rules.

    Exact addr:P blocks; 0.0.0.0:P blocks P on every IPv4 address; [::]:P blocks ::1:P, and
    IPv4 too unless IPV6_V6ONLY (unknown: `default_v6only`, i.e. net.ipv6.bindv6only);
    ::ffff:A:P blocks A:P. Different addresses coexist, as do 127.0.0.1:P and ::1:P.
    Port 0 never conflicts. For UDP the same holds unless both sockets set SO_REUSEADDR.
    Raises ValueError for a wildcard `address`: the sandbox never binds one.
    """
    if address.is_unspecified:
        raise ValueError(f"{address} is a wildcard; conflicts are checked for one address.")
    if port == 0:
        return []
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    found: list[Blocker] = []
    for entry in table:
        if entry.port != port or entry.protocol != protocol:
            continue
        rule = _rule(address, entry, default_v6only)
        if rule is not None:
            found.append(Blocker(entry, rule, _reason(entry, rule), _fix(entry, rule)))
    return found


def is_free(
    address: IPAddress,
    port: int,
    table: SocketTable,
    *,
    protocol: Literal["tcp", "udp"] = "tcp",
    default_v6only: bool = False,
) -> bool:
    """True when no listener in `table` blocks `address:port` (see blockers)."""
    return not blockers(address, port, table, protocol=protocol, default_v6only=default_v6only)


def next_free_port(
    address: IPAddress,
    start_port: int,
    table: SocketTable,
    *,
    taken: Collection[tuple[IPAddress, int]] = (),
    limit: int = 65535,
    protocol: Literal["tcp", "udp"] = "tcp",
    default_v6only: bool = False,
) -> int | None:
    """The first port from `start_port` to `limit` free on `address`, or None.

    `taken` holds the (address, port) pairs other services of the same plan already use.
    """
    if start_port == 0:
        return 0
    used = set(taken)
    for port in range(start_port, min(limit, 65535) + 1):
        if (address, port) in used:
            continue
        if is_free(address, port, table, protocol=protocol, default_v6only=default_v6only):
            return port
    return None


def next_free_address(
    candidates: Iterable[IPAddress],
    port: int,
    table: SocketTable,
    *,
    taken: Collection[tuple[IPAddress, int]] = (),
    protocol: Literal["tcp", "udp"] = "tcp",
    default_v6only: bool = False,
) -> IPAddress | None:
    """The first candidate on which `port` is free (and not in `taken`), or None."""
    used = set(taken)
    for address in candidates:
        if (address, port) in used:
            continue
        if is_free(address, port, table, protocol=protocol, default_v6only=default_v6only):
            return address
    return None


def moves_that_help(address: IPAddress, rules: Iterable[Rule]) -> list[str]:
    """The `--on-conflict` strategies that can get `address` around listeners of `rules`.

    Another address helps only an IPv4 service held by an exact or mapped listener: ::1 is
    the only IPv6 loopback address, and a wildcard or dual-stack listener holds the port on
    every 127.x address. Another port always can.
    """
    wide = {"wildcard", "dual-stack"} & set(rules)
    return ["next-port"] if address.version == 6 or wide else ["next-address", "next-port"]


def _rule(address: IPAddress, entry: Listener, default_v6only: bool) -> Rule | None:
    held = entry.address
    if held == address:
        return "exact"
    if isinstance(held, ipaddress.IPv6Address) and held.ipv4_mapped is not None:
        # A v6 socket on ::ffff:A is an IPv4 listener on A in disguise.
        mapped = held.ipv4_mapped
        if address.version != 4:
            return None
        if mapped == address:
            return "mapped"
        return "wildcard" if mapped.is_unspecified else None
    if not held.is_unspecified:
        return None
    if held.version == address.version:
        return "wildcard"
    if held.version == 6:
        v6only = default_v6only if entry.v6only is None else entry.v6only
        return None if v6only else "dual-stack"
    return None  # 0.0.0.0 leaves IPv6 alone


def _reason(entry: Listener, rule: Rule) -> str:
    owner = entry.owner.describe() if entry.owner else "an unknown process"
    where = entry.hostport
    if rule == "exact":
        scope = "the same address and port"
    elif rule == "mapped":
        scope = "the IPv4-mapped form of the same address"
    elif rule == "dual-stack":
        mode = "dual-stack" if entry.v6only is False else "dual-stack unless it set IPV6_V6ONLY"
        scope = f"{mode}, which blocks the port on every 127.x address too"
    elif entry.address.version == 6 and entry.address.ipv4_mapped is None:
        scope = "which blocks the port on every IPv6 address, ::1 included"
    else:
        scope = "which blocks the port on every 127.x address"
    return f"taken by {owner} (listening on {where}, {scope})"


def _fix(entry: Listener, rule: Rule) -> str:
    pid = entry.owner.pid if entry.owner else None
    flag = "lntp" if entry.protocol == "tcp" else "lnup"
    if pid is not None:
        stop = f"Stop pid {pid} (`kill {pid}`)"
    else:
        stop = f"Stop its owner (`sudo ss -{flag} 'sport = :{entry.port}'` names it)"
    ipv4 = entry.address.version == 4 or getattr(entry.address, "ipv4_mapped", None) is not None
    if rule == "mapped" or (rule == "exact" and ipv4):
        return (
            f"{stop}, or move the service to another address of 127/8 "
            "(`--on-conflict next-address`) or another port (`--on-conflict next-port`)."
        )
    holder = format_hostport(entry.address, entry.port)
    if rule == "exact":  # [::1]:P, the only IPv6 loopback address; 127.x:P is not blocked
        return (
            f"{stop}, or move the service to another port (`--on-conflict next-port`); "
            f"::1 is the only IPv6 loopback address, so only a 127.x address in the profile "
            f"(`address: auto`) moves it off {holder}."
        )
    if rule == "wildcard" and entry.address.version == 6 and entry.v6only:
        return (
            f"{stop}, or move the service to another port (`--on-conflict next-port`) or to "
            f"a 127.x address: ::1 is the only IPv6 loopback address, and {holder} holds it."
        )
    if ipv4:  # 0.0.0.0:P or [::ffff:0.0.0.0]:P
        return (
            f"{stop}, or move the service to another port (`--on-conflict next-port`); "
            f"another 127.x address cannot help, because {holder} holds the port on all of "
            f"them (::1 can: {holder} leaves IPv6 alone)."
        )
    return (
        f"{stop}, or move the service to another port (`--on-conflict next-port`); another "
        f"address cannot help, because {holder} holds the port on every 127.x address and on ::1."
    )

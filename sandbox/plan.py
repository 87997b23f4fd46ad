"""Profile + socket table -> Plan: the address and port of every service, and its conflicts.

Pure: the socket table is a list passed in, so every rule is testable without a socket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sandbox.net.addresses import (
    IPAddress,
    allocate,
    default_pool,
    format_hostport,
    format_url,
    pool_addresses,
)
from sandbox.net.conflicts import Blocker, blockers, next_free_address, next_free_port
from sandbox.net.listeners import Listener, Owner, SocketTable
from sandbox.profile.checks import dependency_order
from sandbox.profile.models import Profile, Service

OnConflict = Literal["fail", "next-address", "next-port"]
ON_CONFLICT_CHOICES: tuple[OnConflict, ...] = ("fail", "next-address", "next-port")


@dataclass(frozen=True)
class PlannedService:
    """Where one service will live. `port` 0 means the kernel picks it at bind time."""

    name: str
    spec: Service
    address: IPAddress
    port: int

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def url(self) -> str:
        scheme = "http" if self.kind == "http" else "tcp"
        return format_url(self.address, self.port, scheme=scheme)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "address": str(self.address),
            "port": self.port,
            "url": self.url,
        }


@dataclass(frozen=True)
class Conflict:
    """A service's address:port is blocked by a listener the machine already has."""

    service: str
    address: IPAddress
    port: int
    blocker: Blocker
    sandbox: str | None = None  # the name of a sandbox of ours that holds it, if any

    @property
    def listener(self) -> Listener:
        return self.blocker.listener

    @property
    def owner(self) -> Owner | None:
        return self.blocker.listener.owner

    @property
    def fix(self) -> str:
        if self.sandbox is not None:
            name = self.sandbox
            return f'It is sandbox "{name}" of ours: stop it with `sandbox down {name}`.'
        return self.blocker.fix

    def sentence(self) -> str:
        where = format_hostport(self.address, self.port)
        return f"{self.service} ({where}) is {self.blocker.reason}. {self.fix}"

    def to_json(self) -> dict[str, object]:
        owner = self.owner
        return {
            "service": self.service,
            "address": str(self.address),
            "port": self.port,
            "rule": self.blocker.rule,
            "listener": {"address": str(self.listener.address), "port": self.listener.port},
            "owner": None
            if owner is None
            else {
                "pid": owner.pid,
                "name": owner.name,
                "cmdline": owner.cmdline,
                "user": owner.user,
                "sandbox": self.sandbox,
            },
            "reason": self.blocker.reason,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Move:
    """What `--on-conflict` changed to get around a conflict."""

    service: str
    before: tuple[IPAddress, int]
    after: tuple[IPAddress, int]
    because: str

    def sentence(self) -> str:
        old = format_hostport(*self.before)
        new = format_hostport(*self.after)
        return f"{self.service} moved from {old} to {new}: {self.because}"

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.service,
            "from": {"address": str(self.before[0]), "port": self.before[1]},
            "to": {"address": str(self.after[0]), "port": self.after[1]},
            "because": self.because,
        }


@dataclass(frozen=True)
class Plan:
    """Every service in start order with its address and port, and what blocks them."""

    profile: Profile
    services: tuple[PlannedService, ...]
    conflicts: tuple[Conflict, ...] = ()
    moves: tuple[Move, ...] = ()
    on_conflict: OnConflict = "fail"
    pool: ipaddress.IPv4Network = field(default=ipaddress.IPv4Network("127.0.0.0/16"))

    @property
    def ok(self) -> bool:
        return not self.conflicts

    def service(self, name: str) -> PlannedService:
        for planned in self.services:
            if planned.name == name:
                return planned
        raise KeyError(name)

    def to_json(self) -> dict[str, object]:
        return {
            "profile": self.profile.name,
            "source": self.profile.source,
            "pool": str(self.pool),
            "on_conflict": self.on_conflict,
            "services": [s.to_json() for s in self.services],
            "conflicts": [c.to_json() for c in self.conflicts],
            "moves": [m.to_json() for m in self.moves],
        }


def make_plan(
    profile: Profile,
    table: SocketTable = (),
    *,
    on_conflict: OnConflict = "fail",
    default_v6only: bool = False,
    ours: Mapping[int, str] | None = None,
) -> Plan:
    """Give every service an address and port, and check each against `table`.

    `ours` maps supervisor pids of running sandboxes to their names, so a conflict with one
    of them says so. Raises nothing for conflicts: they are part of the plan.
    """
    pool = profile.pool or default_pool(profile.name)
    order = dependency_order(profile)
    literal = {
        ipaddress.ip_address(spec.address)
        for spec in profile.services.values()
        if spec.address != "auto"
    }
    autos = [name for name in profile.services if profile.services[name].address == "auto"]
    assigned: dict[str, IPAddress] = dict(allocate(autos, pool, taken=literal))

    wanted: dict[str, tuple[IPAddress, int]] = {
        name: (
            assigned.get(name) or ipaddress.ip_address(spec.address),
            spec.port if isinstance(spec.port, int) else 0,  # auto: the kernel's; none: unbound
        )
        for name, spec in profile.services.items()
    }
    # A move must not land on what another service of this plan asks for, placed or not.
    used: set[tuple[IPAddress, int]] = {pair for pair in wanted.values() if pair[1]}
    used_addresses: set[IPAddress] = set(literal) | set(assigned.values())
    planned: list[PlannedService] = []
    conflicts: list[Conflict] = []
    moves: list[Move] = []
    for name in order:
        spec = profile.services[name]
        address, port = wanted[name]
        found = blockers(address, port, table, default_v6only=default_v6only) if port else []
        if found and on_conflict != "fail":
            moved = _move(
                name, address, port, found, on_conflict, pool, table, used, used_addresses
            )
            if moved is not None:
                moves.append(moved)
                address, port = moved.after
                used_addresses.add(address)
                found = []
        for blocker in found:
            owner_pid = blocker.listener.owner.pid if blocker.listener.owner else None
            theirs = (ours or {}).get(owner_pid) if owner_pid is not None else None
            conflicts.append(Conflict(name, address, port, blocker, sandbox=theirs))
        if port:
            used.add((address, port))
        planned.append(PlannedService(name=name, spec=spec, address=address, port=port))
    return Plan(
        profile=profile,
        services=tuple(planned),
        conflicts=tuple(conflicts),
        moves=tuple(moves),
        on_conflict=on_conflict,
        pool=pool,
    )


def _move(
    name: str,
    address: IPAddress,
    port: int,
    found: list[Blocker],
    on_conflict: OnConflict,
    pool: ipaddress.IPv4Network,
    table: SocketTable,
    used: Collection[tuple[IPAddress, int]],
    used_addresses: Collection[IPAddress],
) -> Move | None:
    """Find the next free address or port for a blocked service, or None if there is none."""
    if on_conflict == "next-port":
        free_port = next_free_port(address, port + 1, table, taken=used)
        if free_port is None:
            return None
        return Move(name, (address, port), (address, free_port), found[0].reason)
    if any(b.rule in ("wildcard", "dual-stack") for b in found) or address.version == 6:
        return None  # another address cannot help: see Conflict.fix / the blocker's fix
    candidates = (a for a in pool_addresses(pool) if a not in used_addresses)
    free = next_free_address(candidates, port, table, taken=used)
    if free is None:
        return None
    return Move(name, (address, port), (free, port), found[0].reason)

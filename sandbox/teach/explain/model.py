"""What `explain` finds, as data: the explanation, bind attempts, localhost's addresses."""

from __future__ import annotations

import errno as errnos
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from sandbox.errors import BindError
from sandbox.net.addresses import IPAddress
from sandbox.net.conflicts import Blocker, blockers
from sandbox.net.listeners import Listener, Owner, SocketTable
from sandbox.net.sockets import bind_listener
from sandbox.probe import ProbeResult

TableReader = Callable[[], SocketTable]
_RULES = ("exact", "mapped", "wildcard", "dual-stack")  # the most specific holder first
_VERDICTS = {
    "exact": "in-use-exact",
    "mapped": "in-use-mapped",
    "wildcard": "blocked-by-wildcard",
    "dual-stack": "blocked-by-dual-stack",
}
_TRIES = 16  # candidates confirmed by a real bind before giving up on a way out
_SCAN = 256  # candidates looked up in the table, at most
_V6 = ipaddress.IPv6Address("::1")


@dataclass(frozen=True)
class BindAttempt:
    """What a real bind of the endpoint did; the socket, if any, was closed at once."""

    ok: bool
    errno: str | None = None  # "EADDRINUSE", "EACCES", ...
    message: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class LocalhostAddress:
    """One address `localhost` resolves to; `listening` is None when it is not loopback."""

    address: str
    listening: bool | None
    listener: str | None = None  # the table's listener that answers there
    owner: str | None = None


@dataclass(frozen=True)
class Explanation:
    """The facts about one endpoint and the sentences and ways out drawn from them."""

    target: str
    endpoint: str
    address: str
    port: int
    verdict: str
    bindable: bool
    sentences: tuple[str, ...]
    bind: BindAttempt
    table_agrees: bool = True
    blockers: tuple[Blocker, ...] = ()
    probe: ProbeResult | None = None
    neighbours: tuple[Listener, ...] = ()
    localhost: tuple[LocalhostAddress, ...] = ()
    localhost_error: str | None = None
    ways_out: tuple[str, ...] = ()
    free_address: str | None = None  # the same port on this address binds (proven by a bind)
    free_port: int | None = None  # this port on the same address binds (proven by a bind)
    ours: tuple[tuple[int, str], ...] = ()  # pid -> sandbox of ours, for the owners above

    def to_json(self) -> dict[str, object]:
        """The same facts as plain JSON types."""
        ours = dict(self.ours)
        return {
            "target": self.target,
            "endpoint": self.endpoint,
            "address": self.address,
            "port": self.port,
            "verdict": self.verdict,
            "bindable": self.bindable,
            "sentences": list(self.sentences),
            "bind": asdict(self.bind),
            "table_agrees": self.table_agrees,
            "blockers": [
                {
                    "rule": b.rule,
                    "listener": _listener_json(b.listener, ours),
                    "reason": b.reason,
                    "fix": b.fix,
                }
                for b in self.blockers
            ],
            "probe": None if self.probe is None else self.probe.to_json(),
            "neighbours": [_listener_json(n, ours) for n in self.neighbours],
            "localhost": [asdict(a) for a in self.localhost],
            "localhost_error": self.localhost_error,
            "ways_out": list(self.ways_out),
            "free_address": self.free_address,
            "free_port": self.free_port,
        }


def _listener_json(entry: Listener, ours: Mapping[int, str]) -> dict[str, object]:
    owner = None if entry.owner is None else asdict(entry.owner)
    if owner is not None:
        owner["sandbox"] = ours.get(entry.owner.pid) if entry.owner and entry.owner.pid else None
    return {
        "address": str(entry.address),
        "port": entry.port,
        "hostport": entry.hostport,
        "protocol": entry.protocol,
        "v6only": entry.v6only,
        "owner": owner,
    }


@dataclass(frozen=True)
class _Endpoint:
    label: str
    address: IPAddress
    port: int
    profile: str | None = None
    pool: ipaddress.IPv4Network | None = None
    taken: frozenset[IPAddress] = frozenset()  # the profile's other addresses: not offered


@dataclass
class _Facts:
    reader: TableReader
    table: SocketTable
    v6only: bool
    ours: dict[int, str]
    timeout: float

    def blocking(self, address: IPAddress, port: int) -> list[Blocker]:
        found = blockers(address, port, self.table, default_v6only=self.v6only)
        return sorted(found, key=lambda b: _RULES.index(b.rule))

    def who(self, owner: Owner | None) -> str:
        """`pid 4127 (postgres)`: short, for a second mention (the first has the command line)."""
        if owner is None or owner.pid is None:
            return owner.describe() if owner else "an unknown process"
        if owner.pid in self.ours:
            return f'sandbox "{self.ours[owner.pid]}" of ours (pid {owner.pid})'
        return f"pid {owner.pid} ({owner.name})" if owner.name else f"pid {owner.pid}"

    def free(self, address: IPAddress, port: int) -> bool:
        return not self.blocking(address, port) and _try_bind(address, port).ok


def _try_bind(address: IPAddress, port: int) -> BindAttempt:
    try:
        sock = bind_listener(address, port)
    except BindError as exc:
        return BindAttempt(False, errnos.errorcode.get(exc.errno or 0), exc.message, exc.hint)
    sock.close()
    return BindAttempt(True)

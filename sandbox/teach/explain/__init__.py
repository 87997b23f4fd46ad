"""`sandbox explain`: can an endpoint be bound now, who holds it under which rule, the ways out."""

from __future__ import annotations

import errno as errnos
import ipaddress
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.errors import BindError, ProfileNotFound, ResolveError, UsageError
from sandbox.net.addresses import IPAddress, format_hostport, is_loopback, pool_addresses
from sandbox.net.conflicts import Blocker, blockers, next_free_port
from sandbox.net.listeners import Listener, Owner, SocketTable
from sandbox.net.sockets import bind_listener
from sandbox.net.table import read_bindv6only, read_table
from sandbox.probe import ProbeResult, ProbeState, probe_tcp, resolve
from sandbox.probe.survey import neighbours
from sandbox.probe.targets import expand, parse_target

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


def _try_bind(address: IPAddress, port: int) -> BindAttempt:
    try:
        sock = bind_listener(address, port)
    except BindError as exc:
        return BindAttempt(False, errnos.errorcode.get(exc.errno or 0), exc.message, exc.hint)
    sock.close()
    return BindAttempt(True)


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
    options = "`--on-conflict next-port`"
    if ep.address.version == 4 and not {b.rule for b in found} & {"wildcard", "dual-stack"}:
        options = f"`--on-conflict next-address` or {options}"
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

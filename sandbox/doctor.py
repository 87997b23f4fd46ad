"""`sandbox doctor`: measure how this machine's loopback behaves, each check a verdict and a fix."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandbox.net.addresses import is_loopback

Status = Literal["ok", "warning", "problem"]
Resolver = Callable[[str], list[str]]

# A spread over the /8: the low end, two middles and the top unicast address (127.255.255.255
# is the broadcast route, FIELD-NOTES 1).
IPV4_SPREAD = ("127.0.0.1", "127.0.0.2", "127.1.2.3", "127.200.0.1", "127.254.254.254")
# Loopback answers in microseconds: anything slower than this is a firewall dropping packets.
SOCKET_TIMEOUT = 0.1
# getaddrinfo cannot be interrupted; past this the answer is abandoned (its thread is a daemon).
RESOLVE_TIMEOUT = 1.0
_RANK: dict[Status, int] = {"ok": 0, "warning": 1, "problem": 2}


@dataclass(frozen=True)
class Check:
    """One finding: `summary` says what was found, `fix` what to do (None when ok)."""

    name: str
    title: str
    status: Status
    summary: str
    fix: str | None
    facts: dict[str, object]

    def to_json(self) -> dict[str, object]:
        """The check as plain JSON types (the facts already are)."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "fix": self.fix,
            "facts": dict(self.facts),
        }


def overall(checks: Iterable[Check]) -> Status:
    """The worst status among `checks` ("ok" when there are none)."""
    return max((c.status for c in checks), key=_RANK.__getitem__, default="ok")


def run_checks(
    *,
    hosts_path: Path = Path("/etc/hosts"),
    proc_root: Path = Path("/proc/sys"),
    resolver: Resolver | None = None,
) -> list[Check]:
    """Run every check, in a fixed order. Raises nothing for what it finds (findings are
    checks); binds only loopback, on port 0, and leaves no socket open.
    """
    return [
        check_ipv4_range(),
        check_ipv6_loopback(),
        check_localhost(resolver, hosts_path=hosts_path),
        check_hosts_file(hosts_path),
        check_unprivileged_ports(proc_root),
        check_ephemeral_range(proc_root),
        check_bindv6only(proc_root),
    ]


def _error(exc: OSError) -> dict[str, object]:
    if exc.errno is not None and exc.errno in errno.errorcode:
        name = errno.errorcode[exc.errno]
    else:
        name = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
    return {"errno": name, "error": exc.strerror or str(exc)}


def probe(address: str) -> dict[str, object]:
    """Bind address:0, listen, connect and accept, each bounded by SOCKET_TIMEOUT; the outcome
    as facts (bound, reachable, connect_us or errno and error). Leaves no socket open.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    facts: dict[str, object] = {"address": address, "bound": False, "reachable": False}
    with ExitStack() as stack:
        try:
            server = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            if family == socket.AF_INET6:
                # Only ::1 is asked about, never a dual-stack socket.
                server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            server.bind((address, 0))
            server.listen(1)
        except OSError as exc:
            return facts | _error(exc)
        port = server.getsockname()[1]
        facts.update(bound=True, port=port)
        try:
            server.settimeout(SOCKET_TIMEOUT)
            client = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            client.settimeout(SOCKET_TIMEOUT)
            start = time.perf_counter_ns()
            client.connect((address, port))
            stack.enter_context(server.accept()[0])
            elapsed = time.perf_counter_ns() - start
        except OSError as exc:
            return facts | _error(exc)
        facts.update(reachable=True, connect_us=round(elapsed / 1000, 1))
    return facts


def _failed(outcome: dict[str, object]) -> str:
    return f"{outcome['address']} ({outcome['errno']})"


def _alias_fix(addresses: Sequence[str], platform: str) -> str:
    if platform.startswith("linux"):
        return "give loopback the whole range back with `sudo ip addr add 127.0.0.1/8 dev lo`"
    commands = "; ".join(f"sudo ifconfig lo0 alias {a} up" for a in addresses)
    return (
        f"add each address as an alias, one per address (`{commands}`); "
        "aliases do not survive a reboot"
    )


def check_ipv4_range(
    addresses: Sequence[str] = IPV4_SPREAD, *, platform: str = sys.platform
) -> Check:
    """Probe a spread of 127/8 addresses; `platform` picks the fix (lo0 aliases off Linux)."""
    name, title = "ipv4-range", "127.0.0.0/8 beyond 127.0.0.1"
    outcomes = [probe(a) for a in addresses]
    facts: dict[str, object] = {"addresses": outcomes, "platform": platform}
    failed = [o for o in outcomes if not o["reachable"]]
    if not failed:
        times = [float(str(o["connect_us"])) for o in outcomes]
        summary = (
            f"All {len(outcomes)} addresses bound, listened and accepted a connection "
            f"({', '.join(addresses)}), in {min(times):g}–{max(times):g} µs each."
        )
        return Check(name, title, "ok", summary, None, facts)
    listing = ", ".join(_failed(o) for o in failed)
    if any(o["address"] == "127.0.0.1" for o in failed):
        summary = f"Even 127.0.0.1 failed, so loopback itself is not usable here: {listing}."
        fix = (
            "Bring the loopback interface up (`sudo ip link set lo up` on Linux, "
            "`sudo ifconfig lo0 up` on macOS) and run `sandbox doctor` again."
        )
        return Check(name, title, "problem", summary, fix, facts)
    unavailable = [str(o["address"]) for o in failed if o["errno"] == "EADDRNOTAVAIL"]
    refused = [str(o["address"]) for o in failed if o["errno"] != "EADDRNOTAVAIL"]
    others = [str(o["address"]) for o in outcomes if o["address"] != "127.0.0.1"]
    if others and unavailable == others:
        summary = (
            f"Only 127.0.0.1 works: {', '.join(others)} failed with EADDRNOTAVAIL, which means "
            "the loopback interface carries 127.0.0.1 alone (as macOS ships)."
        )
        fix = _alias_fix(others, platform)
        return Check(name, title, "problem", summary, fix[0].upper() + fix[1:] + ".", facts)
    working = [str(o["address"]) for o in outcomes if o["reachable"]]
    summary = f"Some addresses failed: {listing}; these worked: {', '.join(working)}."
    parts = [_alias_fix(unavailable, platform)] if unavailable else []
    if refused:
        parts.append(
            f"look for a firewall rule or security policy on loopback that stops "
            f"{', '.join(refused)} (`sudo nft list ruleset`, `sudo iptables -S`, pf on macOS)"
        )
    fix = "; ".join(parts)
    return Check(name, title, "warning", summary, fix[0].upper() + fix[1:] + ".", facts)


def check_ipv6_loopback() -> Check:
    """Bind, listen and connect on ::1 with an IPv6-only socket."""
    name, title = "ipv6-loopback", "IPv6 loopback ::1"
    outcome = probe("::1")
    if outcome["reachable"]:
        summary = (
            "::1 bound (IPv6 only), listened and accepted a connection "
            f"in {outcome['connect_us']} µs, so services may use it."
        )
        return Check(name, title, "ok", summary, None, outcome)
    summary = (
        f"::1 could not be used ({outcome['errno']}: {outcome['error']}): IPv6 looks "
        "disabled on loopback, so only 127.x addresses will work."
    )
    fix = (
        "Check `sysctl net.ipv6.conf.lo.disable_ipv6` (1 means disabled; "
        "`sudo sysctl -w net.ipv6.conf.lo.disable_ipv6=0` enables it), or keep to 127.x addresses."
    )
    return Check(name, title, "warning", summary, fix, outcome)


def _system_resolver(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _resolve(resolver: Resolver, host: str) -> tuple[list[str], str | None]:
    """The addresses `resolver` gives for host, or ([], why) on OSError or RESOLVE_TIMEOUT."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["addresses"] = resolver(host)
        except Exception as exc:  # handed over to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="doctor-resolve", daemon=True)
    worker.start()
    worker.join(RESOLVE_TIMEOUT)
    if worker.is_alive():
        return [], f"no answer within {RESOLVE_TIMEOUT:g} s"
    error = box.get("error")
    if isinstance(error, OSError):
        return [], str(error)
    if isinstance(error, BaseException):
        raise error
    found = box["addresses"]
    assert isinstance(found, list)
    return list(dict.fromkeys(str(a) for a in found)), None


def _is_loopback(text: str) -> bool:
    try:
        return is_loopback(ipaddress.ip_address(text))
    except ValueError:
        return False


def check_localhost(
    resolver: Resolver | None = None, *, hosts_path: Path = Path("/etc/hosts")
) -> Check:
    """What `localhost` resolves to, in order; the only name this module ever looks up."""
    name, title = "localhost", "What the name localhost resolves to"
    addresses, error = _resolve(resolver or _system_resolver, "localhost")
    facts: dict[str, object] = {"addresses": addresses, "error": error}
    if not addresses:
        why = f" ({error})" if error else ""
        summary = f"localhost does not resolve to any address{why}."
        fix = f"Add the lines `127.0.0.1 localhost` and `::1 localhost` to {hosts_path}."
        return Check(name, title, "warning", summary, fix, facts)
    order = " then ".join(addresses)
    outside = [a for a in addresses if not _is_loopback(a)]
    if outside:
        summary = (
            f"localhost resolves to {order}, and {', '.join(outside)} is not loopback: "
            "a client that dials localhost may leave this machine."
        )
        fix = (
            f"Edit {hosts_path} so that localhost names only 127.0.0.1 and ::1, "
            f"and remove it from the line for {', '.join(outside)}."
        )
        return Check(name, title, "problem", summary, fix, facts)
    families = {ipaddress.ip_address(a).version for a in addresses}
    if families == {4, 6}:
        summary = (
            f"localhost resolves to {order} (both families, in that order): a client may try "
            f"{addresses[0]} first and, against a server bound only to the other family, see "
            "'connection refused' there first, which is why sandbox probes literal addresses."
        )
    else:
        missing = "::1" if families == {4} else "127.0.0.1"
        summary = (
            f"localhost resolves to {order} only: a server bound to {missing} is not reached "
            "by the name localhost, so use literal addresses."
        )
    return Check(name, title, "ok", summary, None, facts)


def check_hosts_file(hosts_path: Path) -> Check:
    """The active lines of the hosts file that name localhost, with their line numbers."""
    name, title = "hosts-file", f"localhost in {hosts_path}"
    facts: dict[str, object] = {"path": str(hosts_path)}
    try:
        text = hosts_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        facts |= _error(exc)
        summary = f"Could not read {hosts_path} ({facts['errno']}: {facts['error']})."
        fix = (
            f"Check that {hosts_path} exists and is readable (`ls -l {hosts_path}`); "
            "without it localhost is answered by DNS or not at all."
        )
        return Check(name, title, "warning", summary, fix, facts)
    lines = [
        {"line": number, "text": raw.strip()}
        for number, raw in enumerate(text.splitlines(), start=1)
        if "localhost" in raw.split("#", 1)[0].lower()
    ]
    facts["lines"] = lines
    if not lines:
        summary = (
            f"No active line of {hosts_path} names localhost, so the system resolver "
            "(nss-myhostname or DNS) answers for it."
        )
    else:
        shown = "; ".join(f"line {entry['line']}: `{entry['text']}`" for entry in lines)
        summary = f"{hosts_path} names localhost on {len(lines)} line(s): {shown}."
    return Check(name, title, "ok", summary, None, facts)


def _read_proc(proc_root: Path, relative: str, count: int) -> tuple[list[int], dict[str, object]]:
    """`count` integers from proc_root/relative, with facts; ([], facts with error) if not."""
    path = proc_root / relative
    facts: dict[str, object] = {"path": str(path)}
    try:
        values = [int(word) for word in path.read_text(encoding="ascii").split()]
    except OSError as exc:
        return [], facts | _error(exc)
    except (ValueError, UnicodeDecodeError):
        return [], facts | {"errno": None, "error": "not a list of integers"}
    if len(values) != count:
        return [], facts | {"errno": None, "error": f"expected {count} integer(s)"}
    return values, facts


def check_unprivileged_ports(proc_root: Path) -> Check:
    """The lowest port a process without privileges may bind, and whether this one is root."""
    name, title = "unprivileged-ports", "Ports that need privileges"
    values, facts = _read_proc(proc_root, "net/ipv4/ip_unprivileged_port_start", 1)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    facts["root"] = root
    if not values:
        summary = (
            f"Could not read {facts['path']} ({facts['errno']}: {facts['error']}), so the "
            "traditional rule applies: ports below 1024 need root."
        )
        fix = "Give services ports 1024 and above, or run with the privileges low ports need."
        return Check(name, title, "warning", summary, fix, facts)
    start = values[0]
    facts["value"] = start
    if start == 0:
        summary = "Every port can be bound without privileges (ip_unprivileged_port_start = 0)."
    else:
        who = (
            "this process runs as root, so it may bind them"
            if root
            else "this process is not root, so a service below it fails with EACCES"
        )
        summary = (
            f"Ports below {start} need root or CAP_NET_BIND_SERVICE "
            f"(ip_unprivileged_port_start = {start}); {who}."
        )
    return Check(name, title, "ok", summary, None, facts)


def check_ephemeral_range(proc_root: Path) -> Check:
    """The range outgoing connections take their source ports from."""
    name, title = "ephemeral-range", "Ephemeral (source) port range"
    values, facts = _read_proc(proc_root, "net/ipv4/ip_local_port_range", 2)
    if not values:
        summary = f"Could not read {facts['path']} ({facts['errno']}: {facts['error']})."
        fix = (
            "Keep stub ports below 32768, under the usual ranges "
            "(Linux 32768–60999, IANA 49152–65535)."
        )
        return Check(name, title, "warning", summary, fix, facts)
    low, high = values
    facts |= {"low": low, "high": high}
    summary = (
        f"Outgoing connections take their source port from {low}–{high}, so a stub on a port "
        f"in that range can find it taken by a client; well-known stub ports sit below {low}."
    )
    return Check(name, title, "ok", summary, None, facts)


def check_bindv6only(proc_root: Path) -> Check:
    """Whether a server on [::] also takes its port on every IPv4 address."""
    name, title = "bindv6only", "Dual-stack [::] listeners"
    values, facts = _read_proc(proc_root, "net/ipv6/bindv6only", 1)
    if not values:
        summary = f"Could not read {facts['path']} ({facts['errno']}: {facts['error']})."
        fix = (
            "Assume a server listening on [::] also holds its port on every IPv4 address, "
            "127.x included, unless it sets IPV6_V6ONLY."
        )
        return Check(name, title, "warning", summary, fix, facts)
    facts["value"] = values[0]
    if values[0] == 0:
        summary = (
            "bindv6only = 0: a server listening on [::] also takes its port on every IPv4 "
            "address (dual-stack), so it blocks 127.x:P for every other program."
        )
    else:
        summary = (
            f"bindv6only = {values[0]}: a server listening on [::] takes only IPv6, so "
            "127.x:P stays free unless it opts into dual-stack."
        )
    return Check(name, title, "ok", summary, None, facts)

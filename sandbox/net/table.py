"""The machine's socket table: every TCP listener and bound UDP socket, with its owner."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from sandbox.net import diag
from sandbox.net.addresses import IPAddress
from sandbox.net.listeners import Listener, Owner, Protocol, SocketTable, command_text

_BINDV6ONLY = Path("/proc/sys/net/ipv6/bindv6only")


def read_bindv6only() -> bool:
    """The system default for IPV6_V6ONLY (net.ipv6.bindv6only); False where unknown."""
    try:
        return _BINDV6ONLY.read_text().strip() == "1"
    except OSError:
        return False


def read_table(*, protocols: Iterable[Protocol] = ("tcp", "udp")) -> list[Listener]:
    """Every listening TCP socket and every bound, unconnected UDP socket on the machine.

    Owners the caller may not inspect come back with None fields, never an error. IPv6
    listeners carry IPV6_V6ONLY as the kernel reports it (Linux sock_diag) or, failing
    that, as far as the table implies it; otherwise None.
    """
    wanted = set(protocols)
    kind = "inet" if wanted >= {"tcp", "udp"} else next(iter(wanted), "inet")
    owners: dict[int, Owner] = {}
    found: dict[Listener, None] = {}  # an ordered set: forked workers repeat a socket
    for protocol, ip, port, pid in _raw_listeners(kind):
        if protocol not in wanted:
            continue
        owner = _owner(pid, owners)
        found[Listener(ipaddress.ip_address(ip), port, protocol, owner)] = None
    listeners = _with_v6only(list(found), _kernel_v6only(wanted))
    listeners.sort(key=_sort_key)
    return listeners


def read_listeners() -> list[Listener] | None:
    """The same listeners as `read_table()`, without their owners (every owner is None), read
    from /proc/net in a few milliseconds; None where /proc/net is not readable.

    Whether something blocks a pair depends only on address, port, protocol and
    IPV6_V6ONLY: a plan made from this finds the same conflicts, and only when it finds one
    is the full table (which walks every process's descriptors to name owners) worth its
    cost (about 90 ms on a desktop).
    """
    found: dict[Listener, None] = {}
    nobody = Owner(None, None, None, None)
    for protocol, ip, port in _proc_net():
        found[Listener(ipaddress.ip_address(ip), port, protocol, nobody)] = None
    if not found and not _PROC_NET.is_dir():
        return None
    listeners = _with_v6only(list(found), _kernel_v6only({"tcp", "udp"}))
    listeners.sort(key=_sort_key)
    return listeners


_PROC_NET = Path("/proc/net")
_TCP_LISTEN_HEX = "0A"


def _proc_net() -> Iterator[tuple[Protocol, str, int]]:
    """(protocol, address, port) of every TCP listener and unconnected UDP socket in the
    network namespace, from /proc/net/{tcp,tcp6,udp,udp6}."""
    for protocol, name in (("tcp", "tcp"), ("tcp", "tcp6"), ("udp", "udp"), ("udp", "udp6")):
        try:
            lines = (_PROC_NET / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            local, remote, state = fields[1], fields[2], fields[3]
            if protocol == "tcp" and state != _TCP_LISTEN_HEX:
                continue
            if protocol == "udp" and remote.rsplit(":", 1)[1] != "0000":
                continue  # connected: it blocks no bind
            ip_hex, port_hex = local.rsplit(":", 1)
            yield protocol, _proc_address(ip_hex), int(port_hex, 16)  # type: ignore[misc]


def _proc_address(hex_text: str) -> str:
    # /proc/net prints each 32-bit word of the address in host byte order.
    raw = bytes.fromhex(hex_text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if sys.byteorder == "big":
        words = raw
    return str(ipaddress.ip_address(words))


def loopback_listeners(table: SocketTable) -> list[Listener]:
    """The listeners that matter on loopback: loopback and wildcard ones, by port then address."""
    chosen = [entry for entry in table if entry.is_loopback or entry.is_wildcard]
    return sorted(chosen, key=_sort_key)


def _sort_key(entry: Listener) -> tuple[int, int, int, str, int]:
    pid = entry.owner.pid if entry.owner and entry.owner.pid is not None else -1
    return (entry.port, entry.address.version, int(entry.address), entry.protocol, pid)


def _raw_listeners(kind: str) -> Iterator[tuple[Protocol, str, int, int | None]]:
    import psutil

    try:
        conns = [(c.type, c.laddr, c.raddr, c.status, c.pid) for c in psutil.net_connections(kind)]
    except psutil.AccessDenied:
        # macOS lists the whole table only to root: fall back to the processes we may read.
        conns = []
        for proc in psutil.process_iter():
            try:
                own = proc.net_connections(kind)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            conns.extend((c.type, c.laddr, c.raddr, c.status, proc.pid) for c in own)
    for sock_type, laddr, raddr, status, pid in conns:
        if not laddr:
            continue
        if sock_type == socket.SOCK_STREAM and status == psutil.CONN_LISTEN:
            yield "tcp", laddr[0], laddr[1], pid
        elif sock_type == socket.SOCK_DGRAM and not raddr:
            yield "udp", laddr[0], laddr[1], pid


def _owner(pid: int | None, cache: dict[int, Owner]) -> Owner:
    import psutil

    if pid is None:
        return Owner(None, None, None, None)
    if pid not in cache:
        try:
            info = psutil.Process(pid).as_dict(["name", "cmdline", "username"], ad_value=None)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            info = {}
        name = info.get("name")
        cache[pid] = Owner(pid, name, command_text(info.get("cmdline"), name), info.get("username"))
    return cache[pid]


def _with_v6only(
    listeners: list[Listener], kernel: dict[tuple[str, IPAddress, int], bool]
) -> list[Listener]:
    # Without the kernel's word: two TCP listeners, one IPv4 and one on [::], can only share a
    # port when the [::] one is IPv6-only (barring SO_REUSEPORT). UDP sockets may share a
    # port under SO_REUSEADDR, so nothing follows for UDP.
    ipv4_ports = {(e.protocol, e.port) for e in listeners if e.address.version == 4}
    result = []
    for entry in listeners:
        v6only = kernel.get((entry.protocol, entry.address, entry.port))
        if (
            v6only is None
            and entry.address.version == 6
            and entry.address.is_unspecified
            and (entry.protocol, entry.port) in ipv4_ports
            and entry.protocol == "tcp"
        ):
            v6only = True
        if v6only is not None and entry.address.version == 6:
            entry = Listener(entry.address, entry.port, entry.protocol, entry.owner, v6only)
        result.append(entry)
    return result


# Linux sock_diag (what `ss -e` shows as v6only:1): the one place IPV6_V6ONLY is visible.
def _kernel_v6only(protocols: set[Protocol]) -> dict[tuple[str, IPAddress, int], bool]:
    """(protocol, address, port) -> IPV6_V6ONLY for IPv6 sockets; empty where unavailable."""
    result: dict[tuple[str, IPAddress, int], bool] = {}
    try:
        with diag.connect() as nl:
            for protocol in sorted(protocols):
                number = socket.IPPROTO_TCP if protocol == "tcp" else socket.IPPROTO_UDP
                states = 1 << diag.TCP_LISTEN if protocol == "tcp" else diag.ALL_STATES
                for body in diag.dump(nl, socket.AF_INET6, number, states):
                    parsed = _parse_diag(body)
                    if parsed is None:
                        continue
                    addr, port, v6only = parsed
                    key = (protocol, addr, port)
                    # SO_REUSEPORT groups: one dual-stack member is enough to block IPv4.
                    result[key] = result.get(key, True) and v6only
    except OSError:
        return {}
    return result


def _parse_diag(body: bytes) -> tuple[IPAddress, int, bool] | None:
    # struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid
    # (sport and dport big-endian, src[16], dst[16], if, cookie[2]), then five u32: 72 bytes.
    if len(body) < diag.MSG.size or body[0] != socket.AF_INET6:
        return None
    (port,) = struct.unpack_from(">H", body, 4)
    addr = ipaddress.IPv6Address(body[8:24])
    offset = diag.MSG.size
    while offset + 4 <= len(body):
        attr_len, attr_type = struct.unpack_from("=HH", body, offset)
        if attr_len < 4:
            break
        if attr_type == diag.INET_DIAG_SKV6ONLY and attr_len >= 5:
            return addr, port, body[offset + 4] != 0
        offset += (attr_len + 3) & ~3
    return None

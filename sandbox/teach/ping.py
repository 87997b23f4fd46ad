"""`sandbox ping`: ICMP echo to a loopback address, with round-trip times, like the system ping."""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandbox.errors import PingUnavailable, UsageError
from sandbox.net.addresses import is_loopback, loopback_problem

Method = Literal["dgram", "raw"]
MAX_COUNT = 100
MAX_WAIT = 5.0  # the most `interval` and `timeout` may be: a run lasts at most 100 * 10 s
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
PAYLOAD_BYTES = 56  # what the system ping sends: 64 bytes with the ICMP header
_REQUEST = {4: 8, 6: 128}  # ICMP echo request; ICMPv6 echo request
_REPLY = {4: 0, 6: 129}


@dataclass(frozen=True)
class PingReply:
    """One echo request: its sequence number and round-trip time (None: no reply in time)."""

    seq: int
    rtt_ms: float | None


@dataclass(frozen=True)
class PingReport:
    """A finished ping run. `loss` is a percentage; min/avg/max are None without replies."""

    host: str
    address: str
    method: Method
    sent: int
    replies: tuple[PingReply, ...]

    @property
    def rtts_ms(self) -> tuple[float, ...]:
        return tuple(r.rtt_ms for r in self.replies if r.rtt_ms is not None)

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    @property
    def loss(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def min_ms(self) -> float | None:
        return min(self.rtts_ms, default=None)

    @property
    def avg_ms(self) -> float | None:
        return sum(self.rtts_ms) / self.received if self.received else None

    @property
    def max_ms(self) -> float | None:
        return max(self.rtts_ms, default=None)

    def to_json(self) -> dict[str, object]:
        """The run as plain JSON types, times in milliseconds."""
        return {
            "host": self.host,
            "address": self.address,
            "method": self.method,
            "sent": self.sent,
            "received": self.received,
            "loss": round(self.loss, 1),
            "rtts_ms": [_round(t) for t in self.rtts_ms],
            "replies": [{"seq": r.seq, "rtt_ms": _round(r.rtt_ms)} for r in self.replies],
            "min_ms": _round(self.min_ms),
            "avg_ms": _round(self.avg_ms),
            "max_ms": _round(self.max_ms),
        }


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def icmp_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
    the 16-bit words (an odd last byte is padded with zero). A packet that carries its checksum
    sums to 0."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes, *, version: int = 4) -> bytes:
    """An ICMP echo request (type 8) or ICMPv6 one (type 128) carrying `payload`.

    The ICMPv4 checksum is filled in. The ICMPv6 one is left 0: it covers a pseudo-header with
    the source address, which only the kernel knows for sure, so Linux always computes it.
    """
    header = struct.pack("!BBHHH", _REQUEST[version], 0, 0, ident, seq)
    if version == 6:
        return header + payload
    checksum = icmp_checksum(header + payload)
    return struct.pack("!BBHHH", _REQUEST[version], 0, checksum, ident, seq) + payload


def ping_group_allows(range_text: str, gids: Iterable[int]) -> bool:
    """Whether net.ipv4.ping_group_range (`low high`) admits one of `gids`; "1 0" admits none."""
    try:
        low, high = (int(x) for x in range_text.split())
    except ValueError:
        return False
    return any(low <= gid <= high for gid in gids)


def ping(
    host: str,
    *,
    count: int = 4,
    interval: float = 0.2,
    timeout: float = 1.0,
    method: Literal["auto", "dgram", "raw"] = "auto",
    on_reply: Callable[[PingReport], None] | None = None,
) -> PingReport:
    """Send `count` echo requests to a loopback address (or localhost), `interval` s apart,
    waiting up to `timeout` s for each reply; `on_reply` gets the report so far after each.

    Uses an unprivileged ICMP datagram socket where net.ipv4.ping_group_range admits our
    group, else a raw socket (root or CAP_NET_RAW). Raises UsageError for a host that is not
    loopback or a bound outside 1..100 requests and 0..5 s; PingUnavailable when neither
    socket may be opened or sending fails. Leaves no socket open.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise UsageError(f"-c {count} is outside 1..{MAX_COUNT}: ping sends at most 100 requests.")
    for name, value in (("interval", interval), ("timeout", timeout)):
        if not 0 <= value <= MAX_WAIT or (name == "timeout" and value == 0):
            raise UsageError(f"The {name} {value} s is outside (0, {MAX_WAIT:g}] seconds.")
    address = _loopback(host)
    version = ipaddress.ip_address(address).version
    sock, used = _open(version, method)
    ident, token = os.getpid() & 0xFFFF, os.urandom(8)
    replies: list[PingReply] = []
    with sock:
        for seq in range(1, count + 1):
            payload = (token + struct.pack("!H", seq)).ljust(PAYLOAD_BYTES, b"\xa5")
            started = time.perf_counter()
            try:
                sock.sendto(echo_request(ident, seq, payload, version=version), (address, 0))
            except OSError as exc:
                raise PingUnavailable(
                    f"Sending an echo request to {address} failed: {exc.strerror}.",
                    "A firewall rule (nftables or iptables) may reject ICMP on lo: "
                    "`sudo nft list ruleset` shows the rules.",
                ) from exc
            rtt = _wait_reply(sock, used, version, address, ident, seq, payload, started, timeout)
            replies.append(PingReply(seq, rtt))
            if on_reply is not None:
                on_reply(PingReport(host, address, used, seq, tuple(replies)))
            pause = interval - (time.perf_counter() - started)
            if seq < count and pause > 0:
                time.sleep(pause)  # pacing, as the system ping does
    return PingReport(host, address, used, count, tuple(replies))


def _loopback(host: str) -> str:
    text = host.strip()
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        if literal.lower() != "localhost":
            raise UsageError(
                f"{host!r} is not a loopback address: sandbox ping takes 127.x.y.z, ::1 or "
                "localhost, and looks no other name up, so no packet can leave this machine.",
                "Write 127.0.0.1, another 127.x.y.z, or ::1.",
            ) from None
        return _localhost()
    problem = loopback_problem(address, literal)
    if problem is not None:
        raise UsageError(problem, "Write 127.0.0.1, another 127.x.y.z, or ::1.")
    return str(address)


def _localhost() -> str:
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_RAW)
    except OSError as exc:
        raise UsageError(f"localhost does not resolve here: {exc}.") from exc
    for info in infos:
        if is_loopback(ipaddress.ip_address(info[4][0])):
            return str(info[4][0])
    raise UsageError("localhost resolves to no loopback address here; check /etc/hosts.")


def _open(version: int, method: str) -> tuple[socket.socket, Method]:
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if version == 6 else socket.IPPROTO_ICMP
    gids = sorted({os.getegid(), *os.getgroups()})
    try:
        group_range = " ".join(PING_GROUP_RANGE.read_text().split())
    except OSError:
        group_range = None  # not Linux: just try
    allowed = group_range is None or ping_group_allows(group_range, gids)
    failures: list[str] = []
    kinds: list[tuple[Method, int]] = []
    if method in ("auto", "dgram"):
        kinds.append(("dgram", socket.SOCK_DGRAM))
    if method in ("auto", "raw"):
        kinds.append(("raw", socket.SOCK_RAW))
    for name, kind in kinds:
        if name == "dgram" and method == "auto" and not allowed:
            failures.append(
                f"net.ipv4.ping_group_range is `{group_range}`, which admits none of this "
                f"process's groups ({', '.join(map(str, gids))})"
            )
            continue
        try:
            return socket.socket(family, kind, proto), name
        except OSError as exc:
            if exc.errno == errno.EAFNOSUPPORT:
                raise PingUnavailable("IPv6 is not available on this machine.") from exc
            failures.append(f"opening a {name} ICMP socket failed: {exc.strerror}")
    gid = os.getegid()
    raise PingUnavailable(
        "Cannot send ICMP echo here: " + "; ".join(failures) + ". An unprivileged ICMP socket "
        "needs one of the process's groups inside net.ipv4.ping_group_range (the kernel's "
        "default, `1 0`, is empty); a raw one needs "
        "CAP_NET_RAW (root has it unless a container dropped it).",
        f'Admit your group with `sudo sysctl -w net.ipv4.ping_group_range="{gid} {gid}"` (the '
        f"line `net.ipv4.ping_group_range = {gid} {gid}` in /etc/sysctl.d/ keeps it after a "
        "reboot), or run as root. `sandbox probe ADDRESS:PORT` needs neither.",
    )


def _wait_reply(
    sock: socket.socket,
    method: Method,
    version: int,
    address: str,
    ident: int,
    seq: int,
    payload: bytes,
    started: float,
    timeout: float,
) -> float | None:
    """The round-trip time in ms of the reply to `seq`, or None past the deadline. Other ICMP
    (our own request on a raw socket, other programs' pings) is read and dropped."""
    deadline = started + timeout
    while (left := deadline - time.perf_counter()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        data, peer = sock.recvfrom(65535)
        arrived = time.perf_counter()
        if method == "raw" and version == 4 and len(data) >= 20:
            data = data[(data[0] & 0x0F) * 4 :]  # a raw IPv4 socket hands over the IP header too
        if len(data) < 8 or ipaddress.ip_address(peer[0]) != ipaddress.ip_address(address):
            continue
        kind, code, _, their_ident, their_seq = struct.unpack("!BBHHH", data[:8])
        if (kind, code, their_seq, data[8:]) != (_REPLY[version], 0, seq, payload):
            continue
        if method == "raw" and their_ident != ident:  # a datagram socket's kernel sets the id
            continue
        if version == 4 and icmp_checksum(data) != 0:
            continue
        return (arrived - started) * 1000.0
    return None

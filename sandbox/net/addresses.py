"""Loopback addresses: what a profile may use, the per-profile pool, host:port text both ways."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

IPV6_LOOPBACK = ipaddress.IPv6Address("::1")
IPV4_LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")
IPV4_LOOPBACK_BROADCAST = ipaddress.IPv4Address("127.255.255.255")
_LOCALHOST_V4 = ipaddress.IPv4Address("127.0.0.1")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


def is_loopback(addr: IPAddress) -> bool:
    """A fact, not a permission: True when traffic to `addr` stays on this machine, that is
    127.0.0.0/8, ::1, and ::ffff:127.x (as the socket table may show a listener)."""
    if isinstance(addr, ipaddress.IPv4Address):
        return addr in IPV4_LOOPBACK_NET
    mapped = addr.ipv4_mapped
    if mapped is not None:
        return mapped in IPV4_LOOPBACK_NET
    return addr == IPV6_LOOPBACK


def loopback_problem(addr: IPAddress, written: str | None = None) -> str | None:
    """THE loopback rule: why `addr` may not be a service's, a probe's or a ping's address,
    as one sentence, or None when it may.

    Allowed: 127.0.0.0/8 except its broadcast address, and ::1. Refused:
    - wildcards (0.0.0.0, ::, ::ffff:0.0.0.0): they listen on every interface;
    - 127.255.255.255: it binds, but connect() to it fails with ENETUNREACH, so nothing
      could ever reach a service there (FIELD-NOTES 1);
    - IPv4-mapped ::ffff:127.x: loopback in fact, but it names an IPv4 address through
      the IPv6 stack; the sentence says to write the 127.x form instead;
    - everything else: not loopback, so another machine could be involved.
    """
    literal = written if written is not None else str(addr)
    mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
    if addr.is_unspecified or (mapped is not None and mapped.is_unspecified):
        return (
            f"{literal} is a wildcard address that listens on every interface, so other "
            "machines could reach it, and nothing the sandbox opens may be reachable from "
            "another machine; use a loopback address such as 127.0.0.2 or ::1."
        )
    if mapped is not None and mapped in IPV4_LOOPBACK_NET:
        return f"{literal} is an IPv4-mapped IPv6 address; write it as {mapped} instead."
    if addr == IPV4_LOOPBACK_BROADCAST:
        return (
            "127.255.255.255 is the broadcast address of 127.0.0.0/8: it binds, but "
            "connect() to it fails with ENETUNREACH, so no client could reach it; use "
            "another 127.x.y.z address."
        )
    if not is_loopback(addr):
        return (
            f"{literal} is not a loopback address; use one in 127.0.0.0/8 (such as "
            "127.0.0.2) or ::1, so that no other machine is involved."
        )
    return None


def parse_loopback(text: str, *, where: str = "") -> IPAddress:
    """The address a service may listen on: a literal 127.x.y.z or ::1 (see loopback_problem).

    Raises ValueError with a full sentence (prefixed by `where`, e.g. a field path) for
    anything else: names, wildcards, other addresses, 127.255.255.255, ::ffff:127.x.
    """
    prefix = f"{where}: " if where else ""
    raw = text.strip()
    literal = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        addr = ipaddress.ip_address(literal)
    except ValueError:
        raise ValueError(
            f"{prefix}{text!r} is not an IP address; write a literal loopback address such "
            "as 127.0.0.2 or ::1 (names like localhost are not resolved)."
        ) from None
    problem = loopback_problem(addr, literal)
    if problem is not None:
        raise ValueError(prefix + problem)
    return addr


def default_pool(profile_name: str) -> ipaddress.IPv4Network:
    """A /16 of 127/8 chosen from the name alone: the same on every run and every machine.

    The second octet lies in 16..254, so the pool never overlaps 127.0.x.x (where
    127.0.0.1 lives) nor 127.255.x.x (the broadcast end of the /8).
    """
    import hashlib  # here, not at the top: loading OpenSSL would slow `sandbox --help`

    digest = hashlib.sha256(profile_name.encode("utf-8")).digest()
    second = 16 + int.from_bytes(digest[:4], "big") % (254 - 16 + 1)
    return ipaddress.IPv4Network(f"127.{second}.0.0/16")


def pool_addresses(pool: ipaddress.IPv4Network) -> Iterator[ipaddress.IPv4Address]:
    """The usable addresses of `pool`, in order.

    Skipped: the network address (of pools larger than /31), 127.0.0.1, 127.255.255.255
    and every address ending in .0 or .255 (readable, and clear of broadcast oddities).
    Raises ValueError if the pool is not inside 127.0.0.0/8.
    """
    if not pool.subnet_of(IPV4_LOOPBACK_NET):
        raise ValueError(
            f"The address pool {pool} is not inside 127.0.0.0/8; a pool must hold only "
            "loopback addresses, such as 127.42.0.0/16."
        )
    first = int(pool.network_address)
    last = int(pool.broadcast_address)
    if pool.prefixlen < 31:
        first += 1
    skip = {int(_LOCALHOST_V4), int(IPV4_LOOPBACK_BROADCAST)}
    for value in range(first, last + 1):
        if value & 0xFF in (0, 0xFF) or value in skip:
            continue
        yield ipaddress.IPv4Address(value)


def allocate(
    names: Sequence[str],
    pool: ipaddress.IPv4Network,
    taken: Collection[IPAddress] = (),
) -> dict[str, ipaddress.IPv4Address]:
    """Give each name (in order) the next free address of `pool`, skipping `taken`.

    Deterministic: the same names, pool and taken give the same result. Raises ValueError
    for a repeated name, a pool outside 127/8, or a pool with too few free addresses.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"The service name {name!r} appears twice; names must be unique.")
        seen.add(name)
    skip = set(taken)
    free = (addr for addr in pool_addresses(pool) if addr not in skip)
    result: dict[str, ipaddress.IPv4Address] = {}
    for name, addr in zip(names, free, strict=False):
        result[name] = addr
    if len(result) < len(names):
        raise ValueError(
            f"The address pool {pool} has only {len(result)} free addresses but "
            f"{len(names)} services need one each; choose a larger pool."
        )
    return result


def format_address(addr: IPAddress) -> str:
    """The address as text; IPv4-mapped ones as `::ffff:127.0.0.2` (not `::ffff:7f00:2`)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def format_hostport(addr: IPAddress | str, port: int | str) -> str:
    """`127.0.0.2:8080`, `[::1]:8080` or `localhost:8080`: IPv6 literals always in brackets."""
    host = addr if isinstance(addr, str) else format_address(addr)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def format_url(addr: IPAddress | str, port: int, scheme: str = "http", path: str = "") -> str:
    """`http://[::1]:8080/health`: a URL a browser and curl accept, IPv6 in brackets."""
    if path and not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{format_hostport(addr, port)}{path}"


@dataclass(frozen=True)
class Endpoint:
    """A host (an IP literal or a name such as localhost) and a TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse `127.0.0.5:8080`, `[::1]:9000` or `localhost:5432`; raises as parse_hostport."""
        host, port = parse_hostport(text)
        return cls(host, port)

    def __str__(self) -> str:
        return format_hostport(self.host, self.port)


def parse_hostport(text: str) -> tuple[str, int]:
    """Split `127.0.0.5:8080`, `[::1]:9000` or `localhost:5432` into (host, port).

    IP literals come back normalised and without brackets. Raises ValueError with a full
    sentence for an unbracketed IPv6 address, a missing host, or a missing or invalid port.
    """
    raw = text.strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r} needs a port after the brackets, like [::1]:8080.")
        port_text = rest[1:]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(
                f"{text!r}: only an IPv6 address goes inside brackets, like [::1]:8080."
            ) from None
    elif raw.count(":") > 1:
        head, _, tail = raw.rpartition(":")
        example = f"[{head}]:{tail}" if tail.isdigit() else f"[{raw}]:8080"
        raise ValueError(
            f"{text!r} is ambiguous: an IPv6 address with a port must be written in "
            f"brackets, like {example}."
        )
    else:
        host, sep, port_text = raw.partition(":")
        if not sep:
            raise ValueError(f"{text!r} has no port; write HOST:PORT, like 127.0.0.5:8080.")
        if not host:
            raise ValueError(f"{text!r} has no host; write HOST:PORT, like 127.0.0.5:8080.")
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            if not _HOSTNAME.fullmatch(host):
                raise ValueError(
                    f"{text!r}: {host!r} is neither an IP address nor a host name."
                ) from None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"{text!r} has an invalid port {port_text!r}; a port is a number from 1 to 65535."
        )
    return host, int(port_text)

"""Probe targets: parse what `sandbox probe` is given and expand it to loopback addresses."""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from sandbox.errors import TargetError
from sandbox.net.addresses import format_hostport, loopback_problem
from sandbox.probe import resolve

_LOOPBACK_ONLY = (
    "sandbox probes only this machine's loopback (127.0.0.0/8 and ::1); "
    "it is not a network scanner."
)
_LOOPBACK_HINT = (
    "sandbox probes only this machine's loopback; it is not a network scanner. Probe "
    "127.x.y.z:PORT, [::1]:PORT or localhost:PORT."
)
_FORMS = "write HOST:PORT, [::1]:PORT or http://HOST:PORT/PATH"
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


@dataclass(frozen=True)
class Target:
    """One parsed target. `host` is a canonical literal address or a host name as written."""

    text: str
    kind: Literal["hostport", "url", "name"]  # "name": maybe a profile name; the CLI decides
    host: str | None
    port: int | None
    path: str = "/"  # for urls: path and query, percent-encoded ASCII
    scheme: str | None = None  # "http" or "https" for urls

    @property
    def hostport(self) -> str | None:
        """`host:port` with IPv6 in brackets (an HTTP Host header); None for a name."""
        if self.host is None or self.port is None:
            return None
        return format_hostport(self.host, self.port)


@functools.lru_cache(maxsize=4096)  # parsing and checking a target reads its host 4 times
def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in host:  # a scope id never names loopback; leave it to the host name check
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def canonical(address: str) -> str:
    """A literal address as the probes write it (`::0:1` -> `::1`). Raises ValueError otherwise."""
    literal = _literal(address)
    if literal is None:
        raise ValueError(f"{address!r} is not a literal address.")
    return str(literal)


def is_literal(host: str) -> bool:
    """True for a literal IPv4 or IPv6 address (without brackets or scope id)."""
    return _literal(host) is not None


def check_loopback(host_or_address: str) -> None:
    """Raise TargetError if a literal address breaks the loopback rule (net.addresses). A host
    name passes: expand() checks every address it resolves to."""
    address = _literal(host_or_address)
    if address is None:
        return
    problem = loopback_problem(address, host_or_address)
    if problem is not None:
        raise TargetError(problem, _LOOPBACK_HINT)


def _port(text: str, spec: str, host: str, default: int | None) -> int:
    if not text:
        if default is not None:
            return default
        raise TargetError(f"{spec} has no port: write {format_hostport(host, 'PORT')}.")
    if not (text.isascii() and text.isdigit()):
        raise TargetError(f"{spec}: the port {text!r} is not a number.")
    if not 1 <= int(text) <= 65535:
        raise TargetError(f"{spec}: the port {int(text)} is outside 1..65535.")
    return int(text)


def _host_port(spec: str, default: int | None) -> tuple[str, int]:
    """Split HOST:PORT or [V6]:PORT; a literal comes back canonical and checked for loopback."""
    if spec.startswith("["):
        host, close, rest = spec[1:].partition("]")
        if not close:
            raise TargetError(f"{spec}: the '[' has no matching ']'.")
        if not isinstance(_literal(host), ipaddress.IPv6Address):
            raise TargetError(f"{spec}: brackets are only for IPv6 addresses ([::1]:PORT).")
        if rest and not rest.startswith(":"):
            raise TargetError(f"{spec}: expected ':PORT' after ']'.")
        port_text = rest[1:]
    elif spec.count(":") > 1:
        head, _, tail = spec.rpartition(":")
        fix = f"[{head}]:{tail}" if is_literal(head) and tail.isdigit() else f"[{spec}]:PORT"
        raise TargetError(f"{spec}: an IPv6 address needs brackets before its port; write {fix}.")
    else:
        host, _, port_text = spec.partition(":")
        if not host:
            raise TargetError(f"{spec} has no host: write 127.0.0.1{spec} or another address.")
        if not is_literal(host):
            if re.fullmatch(r"[0-9.]+", host):
                raise TargetError(f"{host} is not an IPv4 address: write all four parts.")
            if not _HOSTNAME.fullmatch(host):
                raise TargetError(f"{host!r} is not a valid host name or address.")
    port = _port(port_text, spec, host, default)
    address = _literal(host)
    if address is None:
        return host, port
    check_loopback(host)
    return str(address), port


def _quote(path: str) -> str:
    """Percent-encode non-ASCII characters, the only ones an HTTP request line cannot carry."""
    return "".join(c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode()) for c in path)


def parse_target(text: str) -> Target:
    """Parse `127.0.0.5:8080`, `[::1]:9000`, `localhost:5432`, `http(s)://HOST[:PORT]/PATH`, or
    a bare word (kind "name"). Raises TargetError (a UsageError and a ValueError) with a
    sentence for anything else: unbracketed IPv6, a bad port, a non-loopback address."""
    spec = text.strip()
    if not spec:
        raise TargetError("the probe target is empty.")
    # Every white space but " " is unprintable: one test for both, not one per character.
    if " " in spec or not spec.isprintable():
        raise TargetError(f"{spec!r} contains spaces or control characters.")
    scheme, sep, rest = spec.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            message = f"{spec}: only http:// and https:// URLs can be probed, not {scheme}://."
            raise TargetError(message)
        cut = min([i for i in map(rest.find, "/?#") if i >= 0] or [len(rest)])
        netloc, tail = rest[:cut], rest[cut:].partition("#")[0]
        if not netloc:
            raise TargetError(f"{spec} has no host.")
        if "@" in netloc:
            raise TargetError(f"{spec}: credentials in the URL are not supported.")
        host, port = _host_port(netloc, 443 if scheme == "https" else 80)
        path = _quote(tail if tail.startswith("/") else "/" + tail)
        return Target(text, "url", host, port, path, scheme)
    if ":" in spec or spec.startswith("["):
        host, port = _host_port(spec, None)
        return Target(text, "hostport", host, port)
    if is_literal(spec):
        raise TargetError(f"{spec} has no port: write {format_hostport(spec, 'PORT')}.")
    return Target(text, "name", None, None)


def keep_loopback(name: str, addresses: list[str]) -> list[str]:
    """The loopback addresses among what `name` resolved to, in order. Raises TargetError
    naming every address when none is loopback."""
    kept = [a for a in addresses if (ip := _literal(a)) is not None and not loopback_problem(ip)]
    if not kept:
        message = f"{name} resolves to {', '.join(addresses)}, none of them loopback: "
        raise TargetError(message + _LOOPBACK_ONLY, _LOOPBACK_HINT)
    return kept


async def expand(target: Target, *, timeout: float = 2.0) -> list[tuple[str, int]]:
    """The (address, port) pairs to probe: a literal as is, a host name resolved in the system's
    order with every non-loopback address dropped. Raises TargetError for a "name" target or a
    name with no loopback address, ResolveError (also a ValueError) when it does not resolve."""
    if target.host is None or target.port is None:
        raise TargetError(f"{target.text} is not a HOST:PORT or URL: there is nothing to resolve.")
    if is_literal(target.host):
        check_loopback(target.host)
        return [(str(ipaddress.ip_address(target.host)), target.port)]
    addresses = await resolve(target.host, target.port, timeout=timeout)
    return [(a, target.port) for a in keep_loopback(target.host, addresses)]

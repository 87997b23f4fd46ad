"""Binding listeners on loopback: all or nothing, and a diagnosis that says what to do."""

from __future__ import annotations

import errno as errnos
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.errors import BindError
from sandbox.net.addresses import IPAddress, format_hostport, parse_loopback

_UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unprivileged_port_start() -> int | None:
    """The lowest port an unprivileged process may bind (Linux), or None where unknown."""
    try:
        return int(_UNPRIVILEGED_PORT_START.read_text().strip())
    except (OSError, ValueError):
        return None


def describe_errno(err: int) -> str:
    """What a bind errno means, as the end of a sentence that starts with ADDRESS:PORT."""
    if err == errnos.EADDRINUSE:
        return "is already in use"
    if err == errnos.EADDRNOTAVAIL:
        return "is not available: the address is not configured on this machine"
    if err == errnos.EACCES:
        return "cannot be bound: permission denied"
    return f"cannot be bound: {os.strerror(err)}"


def diagnose_bind_error(
    address: IPAddress,
    port: int,
    err: int,
    *,
    service: str | None = None,
    platform: str = sys.platform,
) -> BindError:
    """The BindError for a failed bind of address:port: a sentence naming it, and a hint.

    `platform` picks the advice for EADDRNOTAVAIL (macOS and the BSDs need lo0 aliases).
    """
    target = format_hostport(address, port)
    whose = f" for service {service!r}" if service else ""
    message = f"{target}{whose} {describe_errno(err)}."
    hint: str | None = None
    if err == errnos.EADDRINUSE:
        # ::1 is the only IPv6 loopback address: moving to another address cannot help it.
        other = "" if address.version == 6 else " or `--on-conflict next-address`"
        hint = (
            "See who holds it with `sandbox ports`, or let the plan move the service with "
            f"`sandbox plan --on-conflict next-port`{other}."
        )
    elif err == errnos.EADDRNOTAVAIL and address.version == 6:
        hint = (
            "IPv6 may be disabled on loopback: `sysctl net.ipv6.conf.lo.disable_ipv6` "
            "prints 1 then; use a 127.x.y.z address instead, or enable IPv6."
        )
    elif err == errnos.EADDRNOTAVAIL and platform.startswith("linux"):
        hint = (
            "Linux routes all of 127.0.0.0/8 to lo as long as lo carries 127.0.0.1/8: "
            "check `ip addr show lo`, and restore it with `ip addr add 127.0.0.1/8 dev lo` "
            "and `ip link set lo up`."
        )
    elif err == errnos.EADDRNOTAVAIL:
        hint = (
            f"On macOS and the BSDs only 127.0.0.1 exists on lo0 until you add the address "
            f"with `sudo ifconfig lo0 alias {address} up` (it does not survive a reboot)."
        )
    elif err == errnos.EACCES:
        start = unprivileged_port_start()
        if start is not None and port < start:
            message = (
                f"{target}{whose} cannot be bound: ports below {start} need privileges "
                "(net.ipv4.ip_unprivileged_port_start)."
            )
            hint = (
                f"Use a port of {start} or higher, or grant the program the "
                "CAP_NET_BIND_SERVICE capability."
            )
        else:
            hint = (
                "Ports below 1024 usually need privileges; otherwise a security policy "
                "(SELinux, AppArmor, a seccomp filter) forbids this bind."
            )
    return BindError(message, hint, errno=err)


def bind_listener(
    address: IPAddress | str,
    port: int,
    *,
    backlog: int = 1024,
    service: str | None = None,
) -> socket.socket:
    """A listening, non-blocking TCP socket on loopback address:port (port 0: any free port).

    SO_REUSEADDR is set (a restart can rebind over TIME_WAIT); SO_REUSEPORT never is (it
    would let two listeners share the port and split its connections). ::1 is IPv6-only.
    Raises ValueError for a non-loopback address or a port outside 0..65535, and BindError
    when the bind fails; on failure no socket is left open.
    """
    addr = parse_loopback(str(address))
    if not 0 <= port <= 65535:
        raise ValueError(f"Port {port} is not a port number; use 0 to 65535.")
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise diagnose_bind_error(addr, port, exc.errno or 0, service=service) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(addr), port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise diagnose_bind_error(addr, port, exc.errno or 0, service=service) from exc
    return sock


def bind_all(requests: Sequence[tuple[IPAddress | str, int, str]]) -> list[socket.socket]:
    """Bind every (address, port, service) request, in order, or none of them.

    Raises what bind_listener raises for the first failure, after closing every socket
    this call had already opened.
    """
    opened: list[socket.socket] = []
    try:
        for address, port, service in requests:
            opened.append(bind_listener(address, port, service=service))
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


def bound_address(sock: socket.socket) -> tuple[IPAddress, int]:
    """The (address, port) a socket is bound to, e.g. to learn the port after binding port 0."""
    host, port = sock.getsockname()[:2]
    return ipaddress.ip_address(host), int(port)

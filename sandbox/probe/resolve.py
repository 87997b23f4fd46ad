"""Names, for probes: only `localhost`, and only through the hosts file; never DNS.

sandbox sends no name lookups off this machine. `localhost` is looked up in the hosts
file itself (not through getaddrinfo, which may ask DNS when the file lacks it); any other
name is refused with a sentence saying to write the literal address.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

from sandbox.errors import ResolveError

HOSTS = Path("/etc/hosts")
HOSTS_LIMIT = 1024 * 1024  # a hosts file larger than this is not read past it


def hosts_addresses(name: str, hosts: Path = HOSTS) -> list[str]:
    """The addresses the hosts file gives `name`, IPv6 first as getaddrinfo orders loopback
    (RFC 6724: ::1 before 127.0.0.1), each family in file order, without duplicates.

    Reads only a regular file, and at most HOSTS_LIMIT bytes of it; a missing or unreadable
    file gives no addresses.
    """
    try:
        fd = os.open(hosts, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device: never block on it
            return []
        data = os.read(fd, HOSTS_LIMIT)
    except OSError:
        return []
    finally:
        os.close(fd)
    wanted = name.lower()
    found: dict[str, int] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2 or wanted not in (f.lower() for f in fields[1:]):
            continue
        try:
            address = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            continue
        found.setdefault(str(address), address.version)
    return sorted(found, key=lambda a: -found[a])  # stable: IPv6 first, then file order


async def resolve(name: str, port: int, *, timeout: float = 2.0, hosts: Path = HOSTS) -> list[str]:
    """The literal addresses `name` stands for: a literal in canonical form, `localhost`
    from the hosts file. Sends no query anywhere.

    Raises ResolveError (a UsageError) for any other name, or for `localhost` when the hosts
    file does not list it; ValueError for bad input. (`timeout` is kept for callers: reading
    a bounded regular file does not wait.)
    """
    if not name or isinstance(port, bool) or not 0 <= port <= 65535 or not timeout > 0:
        raise ValueError(f"cannot resolve {name!r} port {port!r} within {timeout!r} s.")
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    if name.lower() != "localhost":
        raise ResolveError(
            f"{name} is a name, and sandbox looks up no name but localhost, so that no query "
            "leaves this machine.",
            "write the literal loopback address instead (127.x.y.z or [::1]).",
            "unresolved",
        )
    addresses = hosts_addresses("localhost", hosts)
    if not addresses:
        raise ResolveError(
            f"localhost is not in {hosts}, and sandbox resolves it only through that file.",
            f"add `127.0.0.1 localhost` and `::1 localhost` to {hosts}, or write the address.",
            "unresolved",
        )
    return addresses

"""TCP listeners straight from the kernel (sock_diag): `read_table(protocols=("tcp",))` without
reading every connection on the machine.

psutil's table parses every line of /proc/net/tcp{,6}: on a busy machine thousands of
TIME-WAIT connections (a thousand probes leave hundreds) for a dozen listeners, about 0.1 s.
sock_diag filters by state in the kernel and names each socket's inode, which is matched to
its process through /proc/PID/fd as psutil does. The owners, IPV6_V6ONLY and the order come
from net/table.py's own helpers, so the list is the one `read_table` gives. Where sock_diag
is not available (not Linux, or refused), `read_table` itself answers.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from sandbox.net import diag
from sandbox.net.addresses import IPAddress
from sandbox.net.listeners import Listener, Owner
from sandbox.net.table import (
    _kernel_v6only,
    _owner,
    _sort_key,
    _with_v6only,
    read_table,
)


def read_tcp_listeners() -> list[Listener]:
    """Every listening TCP socket with its owner, as `read_table(protocols=("tcp",))` lists them."""
    found = _diag_listeners()
    if found is None:
        return read_table(protocols=("tcp",))
    pids = _inode_pids({inode for _, _, inode in found})
    owners: dict[int, Owner] = {}
    table: dict[Listener, None] = {}  # an ordered set: forked workers repeat a socket
    for ip, port, inode in found:
        table[Listener(ip, port, "tcp", _owner(pids.get(inode), owners))] = None
    listeners = _with_v6only(list(table), _kernel_v6only({"tcp"}))
    listeners.sort(key=_sort_key)
    return listeners


def _diag_listeners() -> list[tuple[IPAddress, int, int]] | None:
    """(address, port, inode) of every TCP listener, IPv4 and IPv6; None without sock_diag."""
    found: list[tuple[IPAddress, int, int]] = []
    try:
        with diag.connect() as nl:
            for inet in (socket.AF_INET, socket.AF_INET6):
                for body in diag.dump(nl, inet, socket.IPPROTO_TCP, 1 << diag.TCP_LISTEN):
                    fields = diag.MSG.unpack_from(body)
                    family, sport, src, inode = fields[0], fields[4], fields[6], fields[14]
                    if family == socket.AF_INET:
                        found.append((ipaddress.IPv4Address(src[:4]), socket.ntohs(sport), inode))
                    elif family == socket.AF_INET6:
                        found.append((ipaddress.IPv6Address(src), socket.ntohs(sport), inode))
    except OSError:
        return None
    return found


def _inode_pids(inodes: set[int]) -> dict[int, int]:
    """inode -> pid of the processes we may read, as psutil pairs them (the highest pid of
    those sharing a socket); a socket of a process we may not read has none."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    found: dict[int, int] = {}
    if not wanted:
        return found
    for pid in sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(f"{folder}/{fd}"))
            except OSError:
                continue
            if inode is not None:
                found[inode] = pid
    return found

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
import struct
from collections.abc import Iterator

from sandbox.net.addresses import IPAddress
from sandbox.net.listeners import Listener, Owner
from sandbox.net.table import (
    _kernel_v6only,
    _owner,
    _sort_key,
    _with_v6only,
    read_table,
)

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_MSG = struct.Struct("=BBBBHH16s16sIQIIIII")  # struct inet_diag_msg, 72 bytes
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr


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
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        return None
    found: list[tuple[IPAddress, int, int]] = []
    try:
        with socket.socket(family, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            for inet in (socket.AF_INET, socket.AF_INET6):
                found.extend(_dump(nl, inet))
    except OSError:
        return None
    return found


def _dump(nl: socket.socket, inet: int) -> Iterator[tuple[IPAddress, int, int]]:
    request = struct.pack("=BBBBI48x", inet, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    nl.send(_HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP,
                         1, 0) + request)  # fmt: skip
    while True:
        data = nl.recv(1 << 17)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, msg_type = struct.unpack_from("=IH", data, offset)
            if msg_type == _NLMSG_DONE:
                return
            if msg_type == _NLMSG_ERROR or length < _HEADER.size:
                raise OSError("sock_diag refused the dump")
            if length >= _HEADER.size + _MSG.size:
                fields = _MSG.unpack_from(data, offset + _HEADER.size)
                msg_family, sport, src, inode = fields[0], fields[4], fields[6], fields[14]
                if msg_family == socket.AF_INET:
                    yield ipaddress.IPv4Address(src[:4]), socket.ntohs(sport), inode
                elif msg_family == socket.AF_INET6:
                    yield ipaddress.IPv6Address(src), socket.ntohs(sport), inode
            offset += (length + 3) & ~3


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

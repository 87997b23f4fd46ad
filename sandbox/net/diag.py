"""The kernel's socket tables through sock_diag (NETLINK_SOCK_DIAG): filtered by state in the
kernel, with what /proc/net does not show (IPV6_V6ONLY, through an attribute).

One dump loop for the two readers: net/table.py (IPV6_V6ONLY of IPv6 sockets) and
net/listening.py (TCP listeners with their inodes).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST_DUMP = 0x1 | 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_SKV6ONLY = 11
TCP_LISTEN = 10
ALL_STATES = 0xFFFFFFFF
MSG = struct.Struct("=BBBBHH16s16sIQIIIII")  # struct inet_diag_msg, 72 bytes
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr


def connect() -> socket.socket:
    """A sock_diag netlink socket (1 s timeout); raises OSError where there is none."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        raise OSError("no netlink sockets here")
    nl = socket.socket(family, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    nl.settimeout(1.0)
    return nl


def dump(nl: socket.socket, family: int, protocol: int, states: int) -> Iterator[bytes]:
    """Each socket's message (an inet_diag_msg, then its attributes) of one family and
    protocol in the states of the bit mask `states`. Raises OSError if the kernel refuses."""
    request = struct.pack("=BBBBI48x", family, protocol, 0, 0, states)
    nl.send(
        _HEADER.pack(_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 1, 0)
        + request
    )
    while True:
        data = nl.recv(1 << 17)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, msg_type = struct.unpack_from("=IH", data, offset)
            if msg_type == NLMSG_DONE:
                return
            if msg_type == NLMSG_ERROR or length < _HEADER.size:
                raise OSError("sock_diag refused the dump")
            if length >= _HEADER.size + MSG.size:
                yield data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3

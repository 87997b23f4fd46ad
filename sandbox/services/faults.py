"""One fault vocabulary for HTTP and TCP stubs, done to the connection's transport."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import get_args

from sandbox.profile.models import Fault

FAULTS: tuple[str, ...] = get_args(Fault)
GARBAGE_MIN, GARBAGE_MAX = 64, 512


def garbage() -> bytes:
    """64..512 random bytes that no client can take for the start of a valid answer.

    The first byte has its high bit set, so it is never the `H` of `HTTP/`, a RESP type
    marker or printable text: the client always sees a protocol error, never a lucky parse.
    """
    data = bytearray(os.urandom(random.randint(GARBAGE_MIN, GARBAGE_MAX)))
    data[0] |= 0x80
    return bytes(data)


def reset(transport: asyncio.WriteTransport) -> None:
    """Close with a TCP RST: the peer's next read or write fails with ECONNRESET."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER on with a zero timeout turns close() into an abortive close (RST, no FIN).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def inflict(
    fault: Fault,
    transport: asyncio.WriteTransport,
    hold: Callable[[], Awaitable[object]],
) -> None:
    """Do `fault` to the connection behind `transport`; it is closed when this returns.

    `hold` is awaited by `hang` and should return when the server closes (or the client
    goes away); the connection is then dropped. Nothing here raises for a client that has
    already gone: the transport is simply closed.
    """
    if transport.is_closing():
        return
    if fault == "reset":
        reset(transport)
    elif fault in ("close", "empty"):
        transport.close()  # FIN after nothing at all
    elif fault == "garbage":
        transport.write(garbage())
        transport.close()  # close() flushes what was written first, then sends FIN
    elif fault == "hang":
        try:
            await hold()
        finally:
            transport.abort()
    else:  # pragma: no cover - the profile model only admits the names above
        raise ValueError(f"unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")

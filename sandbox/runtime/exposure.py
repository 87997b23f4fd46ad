"""Only loopback, also for real programs: find a program's listeners that other machines reach."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence

from sandbox.errors import ConflictError
from sandbox.net.addresses import format_hostport
from sandbox.net.listeners import Listener, SocketTable

# How to tell well-known programs which address to listen on, by program name.
_FLAGS = {
    "redis-server": "pass `--bind {address}` (redis listens on every address without it)",
    "valkey-server": "pass `--bind {address}`",
    "memcached": "pass `-l {address}`",
    "mosquitto": "write `listener {port} {address}` in its configuration",
    "nginx": "write `listen {address}:{port};` in every `server` block",
    "node": "call `server.listen(port, host)` with the host ({address}), not `listen(port)`",
    "postgres": "pass `-h {address}` (or `listen_addresses = '{address}'`)",
    "python": "bind to the address given to it ({address}), not to '' or 0.0.0.0",
    "uvicorn": "pass `--host {address}`",
    "gunicorn": "pass `--bind {address}:{port}`",
    "flask": "pass `--host {address}`",
}


def exposed(table: SocketTable, family: Collection[int]) -> list[Listener]:
    """The listeners in `table` owned by a pid of `family` that are not on loopback: wildcard
    (0.0.0.0, ::) or a real interface's address, both reachable from other machines."""
    return [
        entry
        for entry in table
        if entry.owner is not None
        and entry.owner.pid in family
        and (entry.is_wildcard or not entry.is_loopback)
    ]


def advice(argv: Sequence[str], address: str, port: int) -> str:
    """What to change so `argv` listens on `address:port` only, in its own words if known."""
    # Every word, so `sh -c 'exec redis-server ...'` is recognised too.
    names = [os.path.basename(word) for word in " ".join(argv).split()]
    for name in names:
        for known, text in _FLAGS.items():
            if name == known or name.startswith(known):
                return text.format(address=address, port=port)
    return f"make it listen on {{address}} ({address}) only, not on every address"


def exposure_error(
    service: str, argv: Sequence[str], address: str, port: int, found: Sequence[Listener]
) -> ConflictError:
    """The error (exit 4) for a program that listens beyond loopback."""
    bound = ", ".join(f"{entry.hostport}/{entry.protocol}" for entry in found)
    owner = found[0].owner
    who = owner.describe() if owner is not None else argv[0]
    return ConflictError(
        f"{service} ({format_hostport(address, port)}) listens on {bound}, beyond loopback "
        f"({who}): other machines could reach it, so the sandbox was stopped.",
        f"In services.{service}.run, {advice(argv, address, port)}.",
    )

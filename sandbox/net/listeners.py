"""The socket table as plain data: Listener, Owner and SocketTable, with no psutil import.

`net/table.py` fills these from the machine; the planner, the conflict rules and the views
read them, so they import this module and never pay for psutil.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sandbox.net.addresses import IPAddress, format_hostport, is_loopback

Protocol = Literal["tcp", "udp"]
COMMAND_CHARS = 120  # the most of a command line a message quotes


def command_text(argv: Sequence[str] | None, name: str | None = None) -> str | None:
    """A process's command line as one shell-quoted string, at most COMMAND_CHARS long.

    Programs that retitle themselves (redis, nginx, postgres) write their title over argv
    and leave the rest as empty strings; quoting those gives dozens of `''`, so empty
    arguments are dropped, and a command line with nothing left falls back to `name`.
    """
    words = [word for word in argv or () if word.strip()]
    if not words:
        return name
    text = shlex.join(words) if len(words) > 1 else words[0]
    return shorten(text)


def shorten(text: str, limit: int = COMMAND_CHARS) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Owner:
    """The process that holds a socket; every field is None when it cannot be seen."""

    pid: int | None
    name: str | None
    cmdline: str | None
    user: str | None

    def describe(self) -> str:
        """`pid 4127 "postgres -D /var/lib/pg" (user postgres)`, or who it might be."""
        if self.pid is None:
            return "a process of another user (its owner is not visible without privileges)"
        text = f"pid {self.pid}"
        command = shorten(self.cmdline or self.name or "")
        if command:
            text += f' "{command}"'
        if self.user:
            text += f" (user {self.user})"
        return text


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket or a bound UDP socket. `v6only` is None where unknown."""

    address: IPAddress
    port: int
    protocol: Protocol
    owner: Owner | None
    v6only: bool | None = None

    @property
    def is_wildcard(self) -> bool:
        """Listening on every address of its family (0.0.0.0, ::, or ::ffff:0.0.0.0)."""
        mapped = self.address.ipv4_mapped if self.address.version == 6 else None
        return self.address.is_unspecified or (mapped is not None and mapped.is_unspecified)

    @property
    def is_loopback(self) -> bool:
        """Listening on 127/8, ::1, or an IPv4-mapped ::ffff:127.x."""
        return is_loopback(self.address)

    @property
    def hostport(self) -> str:
        """`127.0.0.2:8080` or `[::]:8080`."""
        return format_hostport(self.address, self.port)


SocketTable = Sequence[Listener]

"""What a running stub is told about itself and its peers, and what it hands back (no aiohttp)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


def _discard(line: str) -> None:
    """The default log sink: drop the line."""


@dataclass(frozen=True)
class Peer:
    """Where one service of the sandbox listens; templates see it as `services.NAME`."""

    name: str
    address: str
    port: int
    url: str


@dataclass
class ServiceContext:
    """Everything a stub needs besides its spec and its socket."""

    name: str
    address: str
    port: int  # the port actually bound (getsockname), never 0
    url: str  # http://[::1]:8080 style, brackets for IPv6
    profile_dir: Path | None  # folder of the profile file; `file:` responses are confined to it
    peers: Mapping[str, Peer]  # every service of the sandbox, itself included
    log: Callable[[str], None] = _discard  # one line, no newline
    history_limit: int = 1000  # bound of the in-memory request history
    log_requests: bool = True  # a log line per request (per connection for tcp)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request, or one TCP connection, as kept in a stub's bounded history.

    For TCP, `method` is "TCP", `path` is the client's address:port, `status` is None and
    `latency_ms` is how long the connection lasted.
    """

    time: float  # wall clock (time.time()) when the request or connection began
    method: str
    path: str
    status: int | None  # None when a fault answered instead of a status
    latency_ms: float
    fault: str | None = None
    peer: str = ""  # the client's address:port
    bytes_in: int = 0
    bytes_out: int = 0


class StubServer(Protocol):
    """A stub serving on its held socket until `close()`."""

    name: str

    @property
    def history(self) -> Sequence[RequestRecord]:
        """The most recent requests (at most `ServiceContext.history_limit`), oldest first."""
        ...

    async def close(self) -> None:
        """Stop serving and close every connection, hanging ones included; idempotent."""
        ...

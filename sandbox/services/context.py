"""What a running stub is told about itself and its peers, and what it hands back (no aiohttp)."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sandbox.services.journal import Journal
    from sandbox.services.scenarios import StubState


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
    # Numbers journal entries; one counter per sandbox, so entries of all services are ordered.
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    certificate: Path | None = None  # key + chain PEM for `tls: true` (made by the sandbox's CA)
    ca_bundle: Path | None = None  # the sandbox CA's certificate: proxies verify HTTPS peers
    log_requests: bool = True  # a log line per request (per connection and chunk for tcp)
    data_dir: Path | None = None  # a command's {data}: kept across runs
    tmp_dir: Path | None = None  # a command's {tmp}: removed when the sandbox goes down


class StubServer(Protocol):
    """A stub serving on its held socket until `close()`."""

    name: str

    @property
    def journal(self) -> Journal:
        """What the stub received: the newest entries (at most `journal.max`), oldest first."""
        ...

    @property
    def state(self) -> StubState | None:
        """Its scenario states and variables (None for a stub that keeps none)."""
        ...

    def reset(self) -> None:
        """Forget the journal; put scenario states and variables back to their start."""
        ...

    async def close(self) -> None:
        """Stop serving and close every connection, hanging ones included; idempotent."""
        ...

    def adopt(self, conn: socket.socket) -> None:
        """Serve `conn`, accepted from this stub's socket by someone else (the sandbox's
        readiness proof), as if the stub had accepted it."""
        ...

    def prepare_reload(self, spec: Any) -> Callable[[], None]:
        """Build the behaviour of `spec` (the same kind); the returned function swaps it in
        while the socket stays bound. Raises StubConfigError, having changed nothing."""
        ...

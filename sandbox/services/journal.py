"""What each stub received: frozen journal entries in a bounded ring buffer (no aiohttp)."""

from __future__ import annotations

import base64
import itertools
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

DEFAULT_MAX = 1000  # entries kept per service
DEFAULT_BODY_MAX = 64 * 1024  # bytes kept of each body (TCP: of what was received and sent)

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Miss:
    """A route that came near to answering a request, and the first condition it failed."""

    route: int  # index in the service's routes
    method: str
    path: str
    why: str  # "header 'x-api-key' is missing"

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    def to_json(self) -> dict[str, Any]:
        return {"route": self.route, "method": self.method, "path": self.path, "why": self.why}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Miss:
        return cls(
            route=int(data["route"]),
            method=str(data["method"]),
            path=str(data["path"]),
            why=str(data["why"]),
        )


def _bytes_json(data: bytes) -> dict[str, Any]:
    """Bytes for JSON: as text when they are UTF-8, else base64."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _bytes_of(data: Mapping[str, Any]) -> bytes:
    if "base64" in data:
        return base64.b64decode(data["base64"])
    return str(data.get("text", "")).encode("utf-8")


class Entry(NamedTuple):
    """One HTTP request, or one TCP connection, as a stub received it (immutable).

    A NamedTuple rather than a frozen dataclass: one is made for every request, and this
    is several times cheaper to make.

    For TCP, `method` is "TCP", `path` is "", `body` holds the bytes received, `sent` the
    bytes sent, `rules` the indexes of the rules that answered, and `status` is None.
    `latency_ms` is how long the answer (TCP: the connection) took.
    """

    time: float  # wall clock (time.time()) when the request or connection began
    client: str  # the client's address:port
    method: str
    path: str
    seq: int = 0  # 1, 2, 3... in the order entries were completed, across the whole sandbox
    service: str = ""
    query: Pairs = ()
    headers: Pairs = ()
    body: bytes = b""  # at most the journal's body_max bytes
    body_size: int = 0  # the full size received
    status: int | None = None  # None when a fault answered (or for TCP)
    latency_ms: float = 0.0
    route: int | None = None  # index of the route that answered, None when none did
    route_name: str | None = None  # "GET /orders/{id}"
    miss: Miss | None = None  # for an unanswered request: the nearest route and why not
    fault: str | None = None
    sent: bytes = b""  # TCP: what was sent (at most body_max bytes)
    sent_size: int = 0  # bytes sent (HTTP: the response body)
    rules: tuple[int, ...] = ()  # TCP: the rules that answered, in order
    cancelled: bool = False  # the client left (or the sandbox stopped) before the answer

    @property
    def truncated(self) -> bool:
        """Whether `body` is shorter than what was received."""
        return len(self.body) < self.body_size

    @property
    def matched(self) -> bool:
        """Whether a route answered (always True for TCP)."""
        return self.method == "TCP" or self.route is not None

    @property
    def text(self) -> str:
        """The body (as kept) as text; undecodable bytes are replaced."""
        return self.body.decode("utf-8", "replace")

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty, truncated or not JSON."""
        if not self.body or self.truncated:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def param(self, name: str) -> str | None:
        """The first value of query parameter `name`, or None."""
        return next((v for k, v in self.query if k == name), None)

    @property
    def summary(self) -> str:
        """One line: `POST /orders?x=1 -> 201 (routes[2] POST /orders)`."""
        if self.method == "TCP":
            shown = ", ".join(f"rules[{r}]" for r in self.rules) or "no rule"
            fault = f", fault {self.fault}" if self.fault else ""
            return (
                f"TCP from {self.client}: {self.body_size}B in, {self.sent_size}B out "
                f"({shown}{fault})"
            )
        target = self.path + (
            "?" + "&".join(f"{k}={v}" for k, v in self.query) if self.query else ""
        )
        answer = "-" if self.status is None else str(self.status)
        if self.route is not None:
            how = f"routes[{self.route}] {self.route_name}"
        elif self.miss is not None:
            how = f"no route; nearest routes[{self.miss.route}] {self.miss.name}: {self.miss.why}"
        else:
            how = "no route"
        fault = f", fault {self.fault}" if self.fault else ""
        return f"{self.method} {target} -> {answer} ({how}{fault})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_json` reads it back."""
        return {
            "seq": self.seq,
            "service": self.service,
            "time": self.time,
            "client": self.client,
            "method": self.method,
            "path": self.path,
            "query": [list(pair) for pair in self.query],
            "headers": [list(pair) for pair in self.headers],
            "body": _bytes_json(self.body),
            "body_size": self.body_size,
            "truncated": self.truncated,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "route": self.route,
            "route_name": self.route_name,
            "miss": self.miss.to_json() if self.miss else None,
            "fault": self.fault,
            "sent": _bytes_json(self.sent),
            "sent_size": self.sent_size,
            "rules": list(self.rules),
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        """Read back what `to_json` wrote (a detached sandbox's control API sends it)."""
        miss = data.get("miss")
        return cls(
            seq=int(data["seq"]),
            service=str(data["service"]),
            time=float(data["time"]),
            client=str(data["client"]),
            method=str(data["method"]),
            path=str(data["path"]),
            query=tuple((str(k), str(v)) for k, v in data.get("query", ())),
            headers=tuple((str(k), str(v)) for k, v in data.get("headers", ())),
            body=_bytes_of(data.get("body") or {}),
            body_size=int(data.get("body_size", 0)),
            status=data.get("status"),
            latency_ms=float(data.get("latency_ms", 0.0)),
            route=data.get("route"),
            route_name=data.get("route_name"),
            miss=Miss.from_json(miss) if miss else None,
            fault=data.get("fault"),
            sent=_bytes_of(data.get("sent") or {}),
            sent_size=int(data.get("sent_size", 0)),
            rules=tuple(int(r) for r in data.get("rules", ())),
            cancelled=bool(data.get("cancelled", False)),
        )


@dataclass
class Journal:
    """A service's journal: the newest `max` entries, oldest first. Used from the event loop
    that serves the stub (the Python API and the control API call into that loop)."""

    service: str
    max: int = DEFAULT_MAX
    body_max: int = DEFAULT_BODY_MAX
    # Shared by every journal of a sandbox, so `since` works across services.
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    # Made on the first entry: most of a thousand stubs are never asked anything.
    _entries: deque[Entry] | tuple[()] = field(init=False, repr=False, default=())

    def cap(self, data: bytes) -> bytes:
        """`data` cut to `body_max` bytes."""
        return data[: self.body_max]

    def next_seq(self) -> int:
        """The number for an entry completed now: numbers follow completion, sandbox-wide."""
        return next(self.counter)

    def add(self, entry: Entry) -> None:
        """Keep `entry`, made with `seq=next_seq()` and `service=journal.service` right before
        (no await in between, so numbers stay in the order entries are added)."""
        if not isinstance(self._entries, deque):
            self._entries = deque(maxlen=self.max)
        self._entries.append(entry)

    def clear(self) -> None:
        """Forget every entry (numbering goes on, so a follower never sees a number twice)."""
        self._entries = ()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __getitem__(self, index: int) -> Entry:
        return self._entries[index]


def select(
    entries: Iterable[Entry],
    *,
    method: str | None = None,
    path: str | None = None,
    since: int = 0,
) -> list[Entry]:
    """Entries with this method (any case) and exact path, numbered above `since`."""
    wanted = method.upper() if method else None
    return [
        e
        for e in entries
        if e.seq > since
        and (wanted is None or e.method == wanted)
        and (path is None or e.path == path)
    ]

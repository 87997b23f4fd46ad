"""What a probe says: ProbeState and ProbeResult, and the small helpers every probe shares."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

BODY_LIMIT = 64 * 1024  # the most a probe reads of a body, a header block or a send/expect reply
EXCERPT_CHARS = 200
# The probes take `timeout` themselves (ruff's ASYNC109 would have callers wrap them in
# asyncio.timeout): a probe's deadline is part of its answer, a TIMEOUT result, never an exception.


class ProbeState(StrEnum):
    """What the transport said: something listens, nothing does, or why we could not tell."""

    OPEN = "open"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    UNRESOLVED = "unresolved"
    ERROR = "error"


@dataclass(frozen=True)
class ProbeResult:
    """One probe's answer. `state` is the transport's; `expectation_failed` is set when the
    port is OPEN but what answered is not what was asked for (a status, HTTP at all, a reply)."""

    target: str
    address: str | None
    port: int | None
    state: ProbeState
    latency_ms: float | None
    http_status: int | None = None
    body_excerpt: str | None = None
    detail: str = ""
    expectation_failed: bool = False

    @property
    def ok(self) -> bool:
        """Something listens and it answered as expected."""
        return self.state is ProbeState.OPEN and not self.expectation_failed

    def to_json(self) -> dict[str, object]:
        """The result for `--json`: the fields, `ok`, and `body_excerpt` when there is one."""
        data: dict[str, object] = {
            "target": self.target,
            "address": self.address,
            "port": self.port,
            "state": self.state.value,
            "ok": self.ok,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "http_status": self.http_status,
            "detail": self.detail,
        }
        if self.body_excerpt is not None:
            data["body_excerpt"] = self.body_excerpt
        return data


def _seconds(value: float) -> str:
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _excerpt(data: bytes | bytearray) -> str:
    return bytes(data[: EXCERPT_CHARS * 4]).decode("utf-8", errors="replace")[:EXCERPT_CHARS]

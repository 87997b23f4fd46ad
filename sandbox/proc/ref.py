"""A process named by pid *and* start time, so a reused pid is never taken for it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ProcessRef:
    """A process as identified by pid *and* start time (epoch seconds): pids are reused."""

    _KINDS: ClassVar = {"pid": (int,), "start_time": (float,)}  # for the state record reader
    pid: int
    start_time: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `sandbox.runtime.state` reads it back."""
        return dataclasses.asdict(self)

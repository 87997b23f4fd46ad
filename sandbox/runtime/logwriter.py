"""One buffered writer for every service log of a sandbox, flushed on a short timer and at close.

A line-buffered file per service cost one write() system call and one `strftime` per
request (about a quarter of a stub's CPU per request, bench/RESULTS.md). Here lines go to
each file's buffer with a time stamp formatted once per second, and every file with
unflushed lines is flushed FLUSH_EVERY seconds after its first unflushed line, so
`sandbox logs -f` sees a line at most that late; `close()` flushes everything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

FLUSH_EVERY = 0.05  # seconds a line may wait in the buffer before `sandbox logs` can see it
_BUFFER = 64 * 1024


class LogWriter:
    """Opens service logs, stamps and buffers their lines, flushes them in batches."""

    def __init__(self, flush_every: float = FLUSH_EVERY) -> None:
        self.flush_every = flush_every
        self._files: dict[str, IO[str]] = {}
        self._dirty: set[IO[str]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def open(self, name: str, path: Path) -> Callable[[str], None]:
        """A function that appends one line (without newline) to `path`, time-stamped."""
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "a", encoding="utf-8", buffering=_BUFFER)  # noqa: SIM115
        self._files[name] = stream

        def write(line: str) -> None:
            if stream.closed:
                return
            now = int(time.time())
            if now != self._second:
                self._second, self._stamp = now, time.strftime("%H:%M:%S", time.localtime(now))
            stream.write(f"{self._stamp} {line}\n")
            if stream not in self._dirty:
                self._dirty.add(stream)
                self._schedule()

        return write

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a line logged outside one): write it through now
            self.flush()
            return
        self._timer = loop.call_later(self.flush_every, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write every buffered line to its file now."""
        dirty, self._dirty = self._dirty, set()
        for stream in dirty:
            if not stream.closed:
                stream.flush()

    def close(self) -> None:
        """Flush and close every file; later lines are dropped. Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        for stream in self._files.values():
            stream.close()
        self._files.clear()

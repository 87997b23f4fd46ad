"""One buffered writer for every service log of a sandbox: lines batched, files written by a
worker thread, flushed on a short timer and at close; stubs share one file.

A line-buffered file per service cost one write() system call and one `strftime` per
request (about a quarter of a stub's CPU per request, bench/RESULTS.md), and creating a
file can take a millisecond on a busy disk: three seconds for 3000 stubs if the event loop
did it. Here the loop only appends to a list (the time stamp formatted once per second);
in-process stubs share one file, each line tagged with the service's name (`sandbox logs`
picks a service's lines out of it); a single worker thread creates each file as soon as it
is known and writes the batches, in order, FLUSH_EVERY seconds after a log's first
pending line, so `sandbox logs -f` sees a line at most about that late. `drained()`
waits until everything logged so far is on disk; `close()` writes it all and closes.
Each file is capped (LOG_LIMIT): past it the file becomes `NAME.1`, replacing the copy
before, so a stub answering a flood of requests keeps at most twice the limit on disk.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FLUSH_EVERY = 0.05  # seconds a line may wait before `sandbox logs` can see it
LOG_LIMIT = 10 << 20  # bytes per file; one rotated copy (NAME.1) is kept beside it
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, _FLAGS, 0o600)


class LogWriter:
    """Opens service logs, stamps and batches their lines, writes them from one thread."""

    def __init__(
        self,
        flush_every: float = FLUSH_EVERY,
        opener: Callable[[Path], int] | None = None,
        limit: int = LOG_LIMIT,
    ) -> None:
        """`opener(path)` returns a descriptor open for appending (default: os.open);
        `limit`: the bytes a file may hold before it is rotated."""
        self.flush_every = flush_every
        self.limit = limit
        self._opener = opener or _open
        self._error: Exception | None = None  # the first file that could not be opened
        self._worker: ThreadPoolExecutor | None = None
        self._fds: dict[Path, int] = {}  # touched by the worker thread only (and by close)
        self._sizes: dict[Path, int] = {}  # bytes in each open file (worker thread only)
        self._pending: dict[Path, list[str]] = {}  # touched by the caller's thread only
        self._known: set[Path] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._second = -1
        self._stamp = ""

    def _submit(self, job: Callable[[], None]) -> None:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-logs")
        self._worker.submit(job)

    def open(self, path: Path, tag: str | None = None) -> Callable[[str], None]:
        """A function that appends one line (without newline) to `path`, time-stamped, and
        after the stamp `tag` if given (for a file several services share).

        The file is created in the background, at once.
        """
        if path not in self._known:
            self._known.add(path)
            self._submit(lambda: self._create(path))
        pending = self._pending
        prefix = f" {tag} " if tag else " "

        def write(line: str) -> None:
            if self._closed:
                return
            now = int(time.time())
            if now != self._second:
                self._second, self._stamp = now, time.strftime("%H:%M:%S", time.localtime(now))
            lines = pending.get(path)
            if lines is None:
                pending[path] = [f"{self._stamp}{prefix}{line}\n"]
                self._schedule()
            else:
                lines.append(f"{self._stamp}{prefix}{line}\n")

        return write

    def _create(self, path: Path) -> None:
        self._fd(path)

    def _fd(self, path: Path) -> int | None:
        """The open file `path`, created on first use (worker thread); None if it cannot be."""
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = self._fds[path] = self._opener(path)
                self._sizes[path] = os.fstat(fd).st_size
            except Exception as exc:  # reported by drained(); the lines are lost meanwhile
                self._error = self._error or exc
                return None
        return fd

    def _write(self, batch: dict[Path, list[str]]) -> None:
        # A log that cannot be written loses its lines rather than stopping the stub.
        for path, lines in batch.items():
            data = "".join(lines).encode("utf-8", "replace")
            try:
                if self._fd(path) is None:
                    continue
                if self._sizes[path] + len(data) <= self.limit:
                    self._append(path, data)
                    continue
                for line in lines:  # the file fills up within this batch: line by line
                    chunk = line.encode("utf-8", "replace")
                    if self._sizes[path] and self._sizes[path] + len(chunk) > self.limit:
                        self._rotate(path)
                    self._append(path, chunk)
            except OSError:
                continue

    def _append(self, path: Path, data: bytes) -> None:
        fd = self._fds.get(path)
        if fd is None:
            return
        self._sizes[path] += len(data)
        while data:
            data = data[os.write(fd, data) :]

    def _rotate(self, path: Path) -> None:
        """`path` becomes `path.1` (replacing the one before); a new file starts."""
        os.close(self._fds.pop(path))
        os.replace(path, path.with_name(path.name + ".1"))
        self._fd(path)

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a line logged outside one): write it through now
            self.flush(wait=True)
            return
        self._timer = loop.call_later(self.flush_every, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def flush(self, *, wait: bool = False) -> None:
        """Hand every pending line to the worker; with `wait`, until it has written them."""
        batch = dict(self._pending)
        self._pending.clear()  # the same dict: every write() function holds it
        if batch:
            self._submit(lambda: self._write(batch))
        if wait and self._worker is not None:
            self._worker.submit(lambda: None).result()

    async def drained(self) -> None:
        """Wait until every log is created and every line logged so far is written.

        Raises what the opener raised for a log that could not be opened.
        """
        self.flush()
        if self._worker is not None:
            await asyncio.wrap_future(self._worker.submit(lambda: None))
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write what is pending and close every file; later lines are dropped. Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        self._closed = True
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._sizes.clear()

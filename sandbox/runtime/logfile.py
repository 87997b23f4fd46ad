"""A service's log file, capped: past its limit it is rotated once, so logs stay bounded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from sandbox.runtime.private import open_log

LOG_LIMIT = 10 << 20  # bytes per file; one rotated copy (SERVICE.log.1) is kept beside it


class CappedLog:
    """Appends lines to `path`; once it holds `limit` bytes it becomes `path.1` (replacing
    the copy before) and a new file starts. A stub answering a flood of requests thus
    keeps at most twice `limit` on disk."""

    def __init__(self, path: Path, limit: int = LOG_LIMIT) -> None:
        self.path, self.limit = path, limit
        self._stream: IO[str] | None = open_log(path)
        self._size = os.fstat(self._stream.fileno()).st_size

    @property
    def closed(self) -> bool:
        return self._stream is None

    def write(self, line: str) -> None:
        """Append `line` (with its newline); rotate first if the file is full."""
        if self._stream is None:
            return
        size = len(line.encode("utf-8", "replace"))
        if self._size and self._size + size > self.limit:
            self._rotate()
        if self._stream is not None:
            self._stream.write(line)
            self._size += size

    def _rotate(self) -> None:
        assert self._stream is not None
        self._stream.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._stream = open_log(self.path)
        self._size = 0

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

"""`hosts --write` refuses a FIFO or device at once instead of hanging on it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sandbox.teach.hosts import HostsEntry, HostsFileError, write_block


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "hosts"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(HostsFileError, match="not a regular file"):
        write_block(fifo, "demo", [HostsEntry("127.0.0.2", "web.demo", "web", 80)])
    assert time.perf_counter() - t0 < 1.0
    assert fifo.exists()

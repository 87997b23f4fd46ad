"""The shared buffered log writer: lines reach their file soon after, and all of them at close."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sandbox.runtime.logwriter import LogWriter


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


async def _wait_for(path: Path, text: str, deadline: float) -> str:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        content = await asyncio.to_thread(_read, path)
        if text in content or loop.time() > end:
            return content
        await asyncio.sleep(0.01)


async def test_a_line_is_flushed_by_the_timer_without_close(tmp_path: Path) -> None:
    writer = LogWriter(flush_every=0.05)
    try:
        log = writer.open(tmp_path / "logs" / "api.log")
        log("GET / 200")
        content = await _wait_for(tmp_path / "logs" / "api.log", "GET / 200", 5.0)
        assert re.fullmatch(r"\d\d:\d\d:\d\d GET / 200\n", content)
    finally:
        writer.close()


async def test_close_flushes_every_file_and_later_lines_are_dropped(tmp_path: Path) -> None:
    writer = LogWriter(flush_every=60.0)  # the timer never fires within the test
    one, two = writer.open(tmp_path / "a.log"), writer.open(tmp_path / "b.log")
    for i in range(1000):
        one(f"line {i}")
    two("only")
    writer.close()
    one("after close")
    lines = (tmp_path / "a.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    assert lines[-1].endswith("line 999")
    assert (tmp_path / "b.log").read_text(encoding="utf-8").endswith(" only\n")


def test_outside_a_loop_a_line_is_written_through(tmp_path: Path) -> None:
    writer = LogWriter()
    try:
        writer.open(tmp_path / "a.log")("no loop here")
        assert (tmp_path / "a.log").read_text(encoding="utf-8").endswith(" no loop here\n")
    finally:
        writer.close()


async def test_lines_after_a_flush_are_kept_too(tmp_path: Path) -> None:
    writer = LogWriter(flush_every=60.0)
    log = writer.open(tmp_path / "a.log")
    log("one")
    writer.flush()
    log("two")
    writer.close()
    lines = (tmp_path / "a.log").read_text(encoding="utf-8").splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]

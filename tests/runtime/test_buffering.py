"""Block-buffered output: Python runs unbuffered, `tty: true` gives C-stdio-like programs a
terminal, and a `ready.log` that saw no output at all says why and what to do."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import pytest

from sandbox.errors import NotReadyError
from tests.runtime.conftest import StartSandbox

# Prints its ready line without flushing, then idles: into a pipe, Python (like C stdio)
# keeps the line in its buffer unless PYTHONUNBUFFERED is set or stdout is a terminal.
QUIET = f"{shlex.quote(sys.executable)} -c " + shlex.quote(
    "import time, sys; print('listening; isatty', sys.stdout.isatty()); time.sleep(300)"
)


def _profile(address: str, **service: Any) -> dict[str, Any]:
    spec = {"kind": "command", "address": address, "port": "none", "run": QUIET, **service}
    spec.setdefault("ready", {"log": "listening", "timeout": "5s"})
    return {"name": "buffers", "services": {"app": spec}}


async def test_a_python_program_that_does_not_flush_is_ready(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    sb = await start_sandbox(_profile(str(spare_loopback(1)[0])))
    assert sb.services["app"].state == "ready"


async def test_with_tty_a_block_buffering_program_writes_line_by_line(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    # PYTHONUNBUFFERED="" turns Python back into a block-buffering program, like C stdio.
    sb = await start_sandbox(
        _profile(str(spare_loopback(1)[0]), tty=True, env={"PYTHONUNBUFFERED": ""})
    )
    program = sb.services["app"].program
    assert program is not None
    assert "listening; isatty True" in program.tail


async def test_a_silent_program_fails_ready_log_saying_why_and_what_to_do(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    ready = {"log": "listening", "timeout": "1s"}
    profile = _profile(str(spare_loopback(1)[0]), env={"PYTHONUNBUFFERED": ""}, ready=ready)
    with pytest.raises(NotReadyError) as caught:
        await start_sandbox(profile)
    message = caught.value.message
    assert "no output at all yet" in message
    assert "buffer" in message
    assert "tty: true" in message
    assert "stdbuf -oL" in message

"""Readiness by running a check (`redis-cli ping`, `pg_isready`), like compose healthchecks."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Mapping, Sequence

from sandbox.probe import ProbeResult, ProbeState
from sandbox.proc.processes import ref_for, terminate_group

_SHOWN = 200  # characters of the check's output quoted in a failed result


async def probe_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    expect: re.Pattern[str] | None,
    attempt_timeout: float,
    target: str,
    address: str,
    port: int,
) -> ProbeResult:
    """Run `argv` once: ready when it exits 0 within `attempt_timeout` and, with `expect`,
    its output (stdout and stderr) matches. Never raises; a check that cannot start, fails,
    or outlasts its deadline is a not-ready result saying so. A check that outlasts its
    deadline is killed with its whole process group.
    """
    t0 = time.perf_counter()
    shown = " ".join(argv)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        detail = f"the check `{shown}` cannot start: {exc.strerror or exc}"
        return _result(target, address, port, ProbeState.ERROR, detail, t0)
    me = ref_for(process.pid)
    try:
        async with asyncio.timeout(attempt_timeout):
            raw, _ = await process.communicate()
    except TimeoutError:
        await _stop(process, me.start_time if me else None)
        detail = f"the check `{shown}` did not finish within {attempt_timeout:g} s"
        return _result(target, address, port, ProbeState.TIMEOUT, detail, t0)
    except asyncio.CancelledError:
        await _stop(process, me.start_time if me else None)
        raise
    output = raw.decode("utf-8", "replace").strip()
    quoted = output[-_SHOWN:] or "(no output)"
    if process.returncode != 0:
        detail = f"the check `{shown}` exited with {process.returncode}: {quoted}"
        return _result(target, address, port, ProbeState.REFUSED, detail, t0)
    if expect is not None and not expect.search(output):
        detail = f"the output of `{shown}` did not match {expect.pattern!r}: {quoted}"
        return _result(target, address, port, ProbeState.REFUSED, detail, t0)
    return _result(target, address, port, ProbeState.OPEN, f"the check `{shown}` passed", t0)


async def _stop(process: asyncio.subprocess.Process, start: float | None) -> None:
    if start is not None and process.pid > 1:
        await terminate_group(
            process.pid, sig=signal.SIGKILL, grace=0.0, leader_start=start, reap=False
        )
    with contextlib.suppress(ProcessLookupError):
        if process.returncode is None:
            process.kill()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            await process.wait()


def _result(
    target: str, address: str, port: int, state: ProbeState, detail: str, t0: float
) -> ProbeResult:
    latency = (time.perf_counter() - t0) * 1000
    return ProbeResult(target, address, port, state, latency, detail=detail)

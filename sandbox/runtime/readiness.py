"""Which readiness check a service gets, as one probe function for `wait_ready`."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.probe import ProbeResult, ProbeState, probe_http, probe_tcp
from sandbox.probe.tcp import connect_now

if TYPE_CHECKING:
    from sandbox.runtime.running import RunningService

Probe = Callable[[], Awaitable[ProbeResult]]
NO_OUTPUT = (
    "no output at all yet for ready.log: a program writing into a pipe may hold its lines in "
    "a buffer (C stdio and Python do). Set `tty: true` on the service, or run it line-buffered "
    "(`stdbuf -oL PROGRAM`, PYTHONUNBUFFERED=1, which the sandbox sets for Python)"
)
_FIRST_PAUSE, _MAX_PAUSE = 0.005, 0.1  # TCP and HTTP probes back off between these


@dataclass(frozen=True)
class Check:
    """One service's readiness check: the probe, its deadline and the pauses between tries."""

    probe: Probe
    timeout: float
    interval: float = _FIRST_PAUSE
    max_interval: float = _MAX_PAUSE
    now: Callable[[], ProbeResult | None] | None = None  # a check done at once, if it can be


def readiness(running: RunningService, wait_timeout: float, ca_bundle: Path | None = None) -> Check:
    """The check of `running`, by its spec: a job's exit, `ready.command`, `ready.log`,
    `ready.http`, an HTTP stub's `GET /`, the start of a program that listens nowhere, or a
    TCP connect. The deadline is `ready.timeout`, never past `wait_timeout`. A `tls: true`
    stub is probed over HTTPS, trusting only the sandbox's CA (`ca_bundle`)."""
    spec = running.planned.spec
    ready = spec.ready
    timeout = min(ready.timeout if ready is not None else wait_timeout, wait_timeout)
    address, port = running.address, running.port
    program = running.program
    if program is not None and program.job:
        return Check(lambda: _state_probe(running, "completed", "the job completed"), timeout)
    if ready is not None and ready.command is not None and program is not None:
        from sandbox.runtime.checks import probe_command
        from sandbox.services.command import render_command

        argv = render_command(ready.command, program.ctx, where=f"services.{running.name}.ready")
        expect = re.compile(ready.expect) if ready.expect is not None else None

        def check() -> Awaitable[ProbeResult]:
            return probe_command(
                argv,
                env=program.env,
                cwd=program.cwd,
                expect=expect,
                attempt_timeout=ready.attempt_timeout,
                target=running.name,
                address=address,
                port=port,
            )

        return Check(check, timeout, ready.interval, ready.interval)
    if running.log_ready is not None:
        return Check(lambda: _log_probe(running), timeout)
    if program is not None and not port:
        return Check(lambda: _started(running), timeout)
    # Each attempt may take the whole readiness budget (wait_ready cuts it at the deadline):
    # a fixed per-attempt timeout would never see an endpoint slower than it.
    tls = None
    if spec.kind == "http" and spec.tls and ca_bundle is not None:
        from sandbox.probe.tls import trusting

        tls = trusting(ca_bundle)
    if ready is not None and ready.http is not None:
        path, status = ready.http, ready.status
        return Check(
            lambda: probe_http(address, port, path, expect_status=status, timeout=timeout, tls=tls),
            timeout,
        )
    if spec.kind == "http" and running.pid != os.getpid() and (ready is None or not ready.tcp):
        return Check(lambda: probe_http(address, port, "/", timeout=timeout, tls=tls), timeout)
    probe = Check(lambda: probe_tcp(address, port, timeout=timeout), timeout)
    if running.pid == os.getpid():
        # An in-process stub serves on the socket this process bound and listens before
        # serve() returns: one connect proves the listener, an HTTP exchange adds nothing.
        # It was made on the socket before the stub served (Sandbox._start_one); a
        # restarted stub gets one that completes inside connect().
        def now() -> ProbeResult | None:
            proof = running.proof  # made on the socket before it served (see Sandbox)
            return proof if proof is not None else connect_now(address, port)

        return replace(probe, now=now)
    return probe


def _result(running: RunningService, ok: bool, detail: str) -> ProbeResult:
    state = ProbeState.OPEN if ok else ProbeState.REFUSED
    return ProbeResult(running.name, running.address, running.port, state, None, detail=detail)


async def _state_probe(running: RunningService, wanted: str, said: str) -> ProbeResult:
    program = running.program
    ok = program is not None and program.state == wanted
    return _result(running, ok, said if ok else "the job is still running")


async def _started(running: RunningService) -> ProbeResult:
    return _result(running, True, "started (it listens nowhere, so starting is being ready)")


async def _log_probe(running: RunningService) -> ProbeResult:
    matched = running.log_ready
    ok = matched is not None and matched.is_set()
    program = running.program
    if ok:
        return _result(running, True, "its output matched ready.log")
    if program is not None and not program.lines_seen:
        return _result(running, False, NO_OUTPUT)
    return _result(running, False, "no output matched ready.log yet")

"""`down` from the record alone: stop the supervisor, kill leftover process groups, verify ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field

from sandbox.net.addresses import format_hostport
from sandbox.probe import ProbeState, probe_all, probe_tcp
from sandbox.proc.exits import pidfd_exited
from sandbox.proc.marker import marked_by
from sandbox.proc.processes import (
    descendants,
    is_alive,
    signal_ref,
    terminate_group,
    terminate_refs,
)
from sandbox.proc.ref import ProcessRef
from sandbox.runtime.state import SandboxRecord, ServiceRecord, StateDir


@dataclass(frozen=True)
class DownReport:
    """What `down` did and what, if anything, survived it."""

    name: str
    supervisor_was_alive: bool
    stopped: tuple[str, ...] = ()
    survivors: tuple[str, ...] = ()  # sentences: "api (127.20.0.2:8000) still accepts connections"
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.survivors

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "clean": self.clean,
            "supervisor_was_alive": self.supervisor_was_alive,
            "stopped": list(self.stopped),
            "survivors": list(self.survivors),
            "seconds": round(self.seconds, 3),
        }


async def stop_supervisor(record: SandboxRecord, *, grace: float, poll: float = 0.01) -> bool:
    """SIGTERM the recorded supervisor (only if its start time matches), SIGKILL after `grace`.

    Returns whether it was alive. Leaves it dead or reported by the caller's verification.
    The exit is seen through a pidfd the moment it happens; without pidfds, every `poll` s.
    """
    ref = record.supervisor
    if ref is None:
        return False
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):  # no pidfds here, or no such pid
        pidfd = os.pidfd_open(ref.pid)
    try:
        # Checked after the pidfd is open: a live process of the recorded start time is the
        # one the pidfd names (a pid is not reused while its first owner runs).
        if not is_alive(ref):
            return False
        signal_ref(ref, signal.SIGTERM)
        if not await _exited(ref, pidfd, grace, poll):
            signal_ref(ref, signal.SIGKILL)
            await _exited(ref, pidfd, 2.0, poll)
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


async def _exited(ref: ProcessRef, pidfd: int | None, timeout: float, poll: float) -> bool:
    """Wait up to `timeout` s for `ref` to exit; whether it did."""
    if pidfd is not None:
        await pidfd_exited(pidfd, timeout)
        return not is_alive(ref)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while is_alive(ref) and loop.time() < deadline:
        await asyncio.sleep(poll)
    return not is_alive(ref)


async def down(state: StateDir, *, grace: float = 5.0) -> DownReport:
    """Tear down the sandbox recorded in `state` and verify nothing is left.

    The record is removed only when everything is gone; otherwise it stays so that a later
    `down` can try again, and the report lists the survivors.
    """
    t0 = time.perf_counter()
    record = state.read()
    if record is None:
        return DownReport(name=state.name, supervisor_was_alive=False)
    was_alive = await stop_supervisor(record, grace=grace)
    survivors: list[str] = []
    # Programs are killed by their supervisor; these catch what a SIGKILLed one left behind.
    for svc in record.services:
        left = await _stop_service(svc, grace)
        if left:
            pids = ", ".join(str(p) for p in left)
            survivors.append(f"{svc.name}: process(es) {pids} survived SIGKILL")
    if record.supervisor is not None:
        # Programs started but not yet recorded when the supervisor died carry its mark.
        marked = marked_by(record.supervisor)
        left = await terminate_refs(marked, grace=grace) if marked else []
        if left:
            pids = ", ".join(str(p) for p in left)
            survivors.append(f"process(es) {pids} started by the supervisor survived SIGKILL")
        if is_alive(record.supervisor):
            survivors.append(f"the supervisor (pid {record.supervisor.pid}) is still alive")
    survivors.extend(await verify_refused(record))
    if not survivors:
        state.remove()
    return DownReport(
        name=record.name,
        supervisor_was_alive=was_alive,
        stopped=tuple(s.name for s in record.services),
        survivors=tuple(survivors),
        seconds=time.perf_counter() - t0,
    )


async def _stop_service(svc: ServiceRecord, grace: float) -> list[int]:
    """Stop what is left of one recorded program, touching only verified identities."""
    if svc.pgid is None or svc.start_time is None:
        return []
    # The tree is taken only below the very process that was recorded (not a reused pid).
    extra = descendants(svc.pid, svc.start_time) if svc.pid is not None else []
    leader = svc.start_time if svc.pid == svc.pgid else None
    if svc.pgid <= 1 or svc.pgid == os.getpgrp() or leader is None:
        # Our own group number (or an unverifiable one) is not the recorded group any more.
        return await terminate_refs(extra, grace=grace) if extra else []
    return await terminate_group(svc.pgid, grace=grace, extra=extra, leader_start=leader)


async def verify_refused(
    record: SandboxRecord, *, timeout: float = 1.0, settle: float = 3.0
) -> list[str]:
    """Every recorded address:port must refuse connections; describe those that don't.

    Right after a SIGKILL the kernel may need a moment to close a dead process's sockets,
    so an open port is probed again until it refuses or `settle` seconds have passed.
    """
    services = [s for s in record.services if s.port]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while True:
        probes = (probe_tcp(s.address, s.port, timeout=timeout) for s in services)
        results = await probe_all(probes)
        services = [
            svc
            for svc, result in zip(services, results, strict=True)
            if result.state is ProbeState.OPEN
        ]
        if not services or loop.time() >= deadline:
            break
        await asyncio.sleep(0.02)
    return [
        f"{svc.name} ({format_hostport(svc.address, svc.port)}) still accepts connections"
        for svc in services
    ]

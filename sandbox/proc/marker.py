"""The mark every started program carries in its environment, so its supervisor's leftovers
are found even when the supervisor died before it could record them."""

from __future__ import annotations

import contextlib
import os

from sandbox.proc.processes import START_TIME_TOLERANCE, ref_for
from sandbox.proc.ref import ProcessRef

MARKER_ENV = "SANDBOX_SUPERVISOR"


def marker(supervisor: ProcessRef) -> str:
    """`PID:START` naming the supervisor that started a program (inherited by its children)."""
    return f"{supervisor.pid}:{supervisor.start_time:.3f}"


def own_marker() -> str:
    """The mark of the calling process, which is about to start programs."""
    me = ref_for(os.getpid())
    assert me is not None  # we are alive
    return marker(me)


def _parse(text: str) -> ProcessRef | None:
    pid, _, start = text.partition(":")
    try:
        return ProcessRef(int(pid), float(start))
    except ValueError:
        return None


def marked_by(supervisor: ProcessRef) -> list[ProcessRef]:
    """Live processes of our own user whose environment names `supervisor`, by identity.

    A process may rewrite its environment; programs do not in practice, and what the mark
    misses the recorded process groups still catch. Processes we may not read are skipped.
    """
    import psutil

    uid, me = os.getuid(), os.getpid()
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid == me or proc.uids().real != uid:
                continue
            mark = _parse(proc.environ().get(MARKER_ENV, ""))
            if mark is None or mark.pid != supervisor.pid:
                continue
            if abs(mark.start_time - supervisor.start_time) >= START_TIME_TOLERANCE:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(ProcessRef(proc.pid, proc.create_time()))
    return found

"""Processes by identity (pid + start time): liveness, safe signals, group teardown, pdeathsig."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence

import psutil

from sandbox.errors import TeardownError
from sandbox.runtime.state import ProcessRef

# psutil derives start times from /proc/stat's btime, a whole second that moves when the
# wall clock is stepped: a one-second wobble is normal, a reused pid that also started
# within a second of the recorded one is not.
START_TIME_TOLERANCE = 1.5
PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> float | None:
    """The process's start time (epoch seconds), or None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


def ref_for(pid: int) -> ProcessRef | None:
    """A ProcessRef for the live process `pid`, or None if there is none."""
    started = start_time(pid)
    return None if started is None else ProcessRef(pid, started)


def _same_start(recorded: float, actual: float | None) -> bool:
    return actual is not None and abs(actual - recorded) < START_TIME_TOLERANCE


def is_alive(ref: ProcessRef) -> bool:
    """Whether `ref` still runs: its pid exists, started when recorded, and is no zombie."""
    try:
        proc = psutil.Process(ref.pid)
        return _same_start(ref.start_time, proc.create_time()) and (
            proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists and started when recorded; we may just not read its status


def signal_ref(ref: ProcessRef, sig: int) -> bool:
    """Send `sig` to `ref` only if it is that very process; False if it is gone.

    Uses a pidfd where the kernel has them, so the pid cannot be reused between the check
    and the signal. Raises TeardownError if the process lives but we may not signal it.
    """
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(ref.pid)
    try:
        if not is_alive(ref):
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(ref.pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise TeardownError(
            f"Not allowed to signal {describe(ref.pid) or f'pid {ref.pid}'}.",
            hint="Run the command as the user that started the sandbox.",
        ) from exc
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _scan(pgid: int) -> tuple[list[int], list[int]]:
    """(live, zombie) pids of the processes whose process group is `pgid`."""
    live, zombies = [], []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) != pgid:
                continue
            dead = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
        except psutil.AccessDenied:
            dead = False
        (zombies if dead else live).append(pid)
    return live, zombies


def group_pids(pgid: int) -> list[int]:
    """The live (non-zombie) processes whose process group is `pgid`."""
    return _scan(pgid)[0]


def descendants(pid: int) -> list[ProcessRef]:
    """A snapshot of the tree below `pid`: catches what left the group (setsid, setpgid)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    refs = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            refs.append(ProcessRef(child.pid, child.create_time()))
    return refs


def describe(pid: int) -> str | None:
    """`pid N "command line"` for messages, or None if there is no such process."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            name = proc.name()
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.ZombieProcess:
                return f'pid {pid} "{name}" (exited, not yet reaped)'
            except psutil.AccessDenied:
                cmd = ""
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return f"pid {pid}"
    cmd = cmd or f"[{name}]"
    return f'pid {pid} "{cmd if len(cmd) <= 160 else cmd[:159] + "…"}"'

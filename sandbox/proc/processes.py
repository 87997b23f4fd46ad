"""Processes by identity (pid + start time): liveness, safe signals, group teardown, pdeathsig."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence

from sandbox.errors import TeardownError
from sandbox.proc.ref import ProcessRef

# psutil derives start times from /proc/stat's btime, a whole second that moves when the
# wall clock is stepped: a one-second wobble is normal, a reused pid that also started
# within a second of the recorded one is not.
START_TIME_TOLERANCE = 1.5
PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> float | None:
    """The process's start time (epoch seconds), or None if there is no such process.

    The very figure psutil's create_time() gives (its start in clock ticks since boot, plus
    the boot time), read from /proc without importing psutil: a supervisor of stubs alone
    needs only its own start time, and importing psutil would add about 10 ms to its start.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        return int(fields[19]) / _CLOCK_TICKS + _boot_time()
    except FileNotFoundError:
        return None
    except (OSError, IndexError, ValueError):  # no /proc here, or one unlike Linux's
        import psutil

        try:
            return psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _boot_time() -> float:
    """/proc/stat's btime, read on every call as psutil does: it moves if the clock is set."""
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def ref_for(pid: int) -> ProcessRef | None:
    """A ProcessRef for the live process `pid`, or None if there is none."""
    started = start_time(pid)
    return None if started is None else ProcessRef(pid, started)


def _same_start(recorded: float, actual: float | None) -> bool:
    return actual is not None and abs(actual - recorded) < START_TIME_TOLERANCE


def _state(ref: ProcessRef) -> str:
    """ "alive", "zombie" (exited, not reaped) or "gone" (no such process, or another one)."""
    import psutil

    try:
        proc = psutil.Process(ref.pid)
        if not _same_start(ref.start_time, proc.create_time()):
            return "gone"
        return "zombie" if proc.status() == psutil.STATUS_ZOMBIE else "alive"
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "alive"  # it exists and started when recorded; we may just not read its status


def is_alive(ref: ProcessRef) -> bool:
    """Whether `ref` still runs: its pid exists, started when recorded, and is no zombie."""
    return _state(ref) == "alive"


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
    import psutil

    live: list[int] = []
    zombies: list[int] = []
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


def descendants(pid: int, start: float | None = None) -> list[ProcessRef]:
    """A snapshot of the tree below `pid`: catches what left the group (setsid, setpgid).

    With `start`, the tree is taken only if `pid` is still the process that started then:
    the children of a stranger who got a reused pid are never ours.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if start is not None and not _same_start(start, proc.create_time()):
            return []
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    refs = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            refs.append(ProcessRef(child.pid, child.create_time()))
    return refs


def describe(pid: int) -> str | None:
    """`pid N "command line"` for messages, or None if there is no such process."""
    import psutil

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


async def terminate_group(
    pgid: int,
    *,
    sig: int = signal.SIGTERM,
    grace: float = 5.0,
    extra: Sequence[ProcessRef] = (),
    poll: float = 0.01,
    kill_wait: float = 2.0,
    leader_start: float | None = None,
    reap: bool = True,
) -> list[int]:
    """Stop process group `pgid` and the `extra` processes; return the pids that survived.

    Sends `sig` (then SIGCONT, so stopped members act on it) to the group and to each extra
    that is still the recorded process; polls until all are gone; after `grace` seconds
    SIGKILLs them and polls up to `kill_wait` more. An empty list means clean.

    `leader_start` is the recorded start time of process `pgid`: if a different process now
    has that pid, the group number was reused and the group is left alone (extras are still
    stopped). With `reap`, our own exited children in the group are waited for; pass
    `reap=False` when a Popen or an asyncio child watcher owns their exit status.
    Raises ValueError for pgid <= 1 or our own group. Leaves no member it could kill.
    """
    if pgid <= 1 or pgid == os.getpgrp():
        raise ValueError(f"refusing to signal process group {pgid}")
    same = leader_start is None or _leader_matches(pgid, leader_start)
    group, refs = (pgid if same else None), tuple(extra)
    _send(group, refs, sig)
    if sig not in (signal.SIGKILL, signal.SIGCONT):
        _send(group, refs, signal.SIGCONT)
    left = await _wait_gone(group, refs, grace, poll, reap)
    if left:
        _send(group, refs, signal.SIGKILL)
        left = await _wait_gone(group, refs, kill_wait, poll, reap, resend=signal.SIGKILL)
    return left


async def terminate_refs(
    refs: Sequence[ProcessRef], *, grace: float = 5.0, poll: float = 0.01
) -> list[int]:
    """SIGTERM (and SIGCONT) each of `refs` still alive, SIGKILL after `grace`; the survivors."""
    _send(None, refs, signal.SIGTERM)
    _send(None, refs, signal.SIGCONT)
    left = await _wait_gone(None, refs, grace, poll, True)
    if left:
        _send(None, refs, signal.SIGKILL)
        left = await _wait_gone(None, refs, 2.0, poll, True)
    return left


def signal_tree(
    pgid: int, sig: int, *, leader_start: float | None, extra: Sequence[ProcessRef] = ()
) -> None:
    """Send `sig` at once to the members of group `pgid` and to `extra`, each by identity.

    The group is skipped if its leader is not the process that started at `leader_start`.
    """
    same = pgid > 1 and pgid != os.getpgrp()
    same = same and (leader_start is None or _leader_matches(pgid, leader_start))
    _send(pgid if same else None, extra, sig)


def _leader_matches(pgid: int, leader_start: float) -> bool:
    # While any member lives the kernel never hands out `pgid` as a new pid, so a live
    # process with that pid but another start time means the old group is long gone. A
    # leader running as another user is not ours either, whatever a record says.
    import psutil

    try:
        leader = psutil.Process(pgid)
        return _same_start(leader_start, leader.create_time()) and (
            leader.uids().real == os.getuid()
        )
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def _send(group: int | None, refs: Iterable[ProcessRef], sig: int) -> None:
    # Each member is signalled through its own verified identity (pid + start time, via a
    # pidfd), never with killpg: a member that exits between the scan and the signal cannot
    # hand its pid to a stranger who then gets the signal.
    members = group_members(group) if group is not None else []
    for ref in [*members, *refs]:
        with contextlib.suppress(TeardownError):
            signal_ref(ref, sig)


def group_members(pgid: int) -> list[ProcessRef]:
    """The live members of process group `pgid` that we may signal, by identity.

    When the group's leader (process `pgid`) is gone, only members running as our own user
    count: a recorded group number alone never makes us signal another user's processes.
    """
    import psutil

    uid, leader_alive = os.getuid(), start_time(pgid) is not None
    refs = []
    for pid in _scan(pgid)[0]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc = psutil.Process(pid)
            if leader_alive or proc.uids().real == uid:
                refs.append(ProcessRef(pid, proc.create_time()))
    return refs


def orphaned_group(pgid: int, leader_exit: float) -> list[ProcessRef]:
    """The live members of group `pgid` that started before its leader exited (at
    `leader_exit`, epoch seconds), whoever runs them, by identity.

    For a group this process created and whose leader it reaped itself: members that
    changed user (nginx's workers run as `nobody` under root) are ours too. A member that
    started before the leader's exit joined while the group was ours (a group id is not
    reused while any member lives), so a later stranger's group is never taken for it.
    """
    import psutil

    refs = []
    for pid in _scan(pgid)[0]:
        with contextlib.suppress(psutil.Error):
            started = psutil.Process(pid).create_time()
            if started <= leader_exit + START_TIME_TOLERANCE:
                refs.append(ProcessRef(pid, started))
    return refs


async def _wait_gone(
    group: int | None,
    refs: Sequence[ProcessRef],
    seconds: float,
    poll: float,
    reap: bool,
    resend: int | None = None,
) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        live, zombies = _scan(group) if group is not None else ([], [])
        states = {ref: _state(ref) for ref in refs}
        if reap:
            _reap([*zombies, *(r.pid for r, st in states.items() if st == "zombie")])
        left = sorted({*live, *(r.pid for r, st in states.items() if st == "alive")})
        if not left or loop.time() >= deadline:
            return left
        if resend is not None:  # a member forked after the last scan gets it too
            _send(group, refs, resend)
        await asyncio.sleep(poll)


def _reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those of `pids` that are our own exited children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _nothing() -> None:
    pass


def preexec_child(pdeathsig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive `pdeathsig` when its parent dies.

    Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op. Combine it with
    `start_new_session=True`. Call it in the process that spawns, right before spawning:
    it remembers that process's pid and, if the parent already died before prctl ran,
    the child signals itself. Caveats: the signal fires when the parent *thread* that
    forked exits, so spawn from the main thread (or a thread that lives as long as the
    children); it covers the direct child only (its own children need the group kill);
    the kernel clears it when the child execs a set-uid program. Raises OSError in the
    child (so Popen raises SubprocessError) if prctl fails.
    """
    import ctypes

    if sys.platform != "linux":
        return _nothing
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
    prctl.restype = ctypes.c_int
    parent, sig = os.getpid(), int(pdeathsig)

    def set_pdeathsig() -> None:
        # Runs in the forked child before exec: only async-signal-safe-ish work here.
        if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return set_pdeathsig

"""Processes by identity: liveness, safe signals, group teardown, pdeathsig; real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.proc.processes import (
    descendants,
    describe,
    group_pids,
    is_alive,
    ref_for,
    signal_ref,
    start_time,
    terminate_group,
)
from sandbox.runtime.state import ProcessRef

PY = sys.executable
ECHO = (
    "import sys\nprint('ready', flush=True)\nfor line in sys.stdin:\n    print('pong', flush=True)"
)


class Spawner:
    """Starts processes in their own session and SIGKILLs every group and process it knows."""

    def __init__(self) -> None:
        self.popens: list[tuple[subprocess.Popen[bytes], ProcessRef | None]] = []
        self.refs: list[ProcessRef] = []
        self._bufs: dict[int, bytes] = {}

    def spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, start_new_session=True
        )
        self.popens.append((proc, ref_for(proc.pid)))
        return proc

    def track(self, pid: int) -> ProcessRef:
        ref = ref_for(pid)
        assert ref is not None, f"pid {pid} is not running"
        self.refs.append(ref)
        return ref

    def line(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> str:
        assert proc.stdout is not None
        buf, deadline = self._bufs.get(proc.pid, b""), time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no line from pid {proc.pid} within {timeout}s (got {buf!r})"
            if select.select([proc.stdout], [], [], left)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"pid {proc.pid} closed its stdout (got {buf!r})"
                buf += chunk
        line, _, self._bufs[proc.pid] = buf.partition(b"\n")
        return line.decode()

    def cleanup(self) -> None:
        for ref in self.refs:
            if _same(ref):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(ref.pid, signal.SIGKILL)
        for _, leader in self.popens:
            # The group number is ours while its leader is unreaped or nobody else took it.
            if leader is not None and (start_time(leader.pid) is None or _same(leader)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(leader.pid, signal.SIGKILL)
        for proc, _ in self.popens:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
            proc.wait(timeout=10)


def _same(ref: ProcessRef) -> bool:
    actual = start_time(ref.pid)
    return actual is not None and abs(actual - ref.start_time) < 1.5


@pytest.fixture
def procs() -> Iterator[Spawner]:
    spawner = Spawner()
    try:
        yield spawner
    finally:
        spawner.cleanup()


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def ping(procs: Spawner, proc: subprocess.Popen[bytes]) -> str:
    """A round trip through the ECHO program: it answers only if it is alive."""
    assert proc.stdin is not None
    proc.stdin.write(b"ping\n")
    return procs.line(proc)


def test_live_process_has_a_ref_and_a_description(procs: Spawner) -> None:
    proc = procs.spawn([PY, "-c", ECHO])
    assert procs.line(proc) == "ready"
    ref = ref_for(proc.pid)
    assert ref is not None
    assert ref.pid == proc.pid
    assert abs(ref.start_time - time.time()) < 60
    assert is_alive(ref)
    text = describe(proc.pid)
    assert text is not None
    assert text.startswith(f'pid {proc.pid} "')
    assert "print('ready'" in text


def test_reaped_process_is_gone(procs: Spawner) -> None:
    proc = procs.spawn([PY, "-c", "pass"])
    ref = ProcessRef(proc.pid, time.time())
    assert proc.wait(timeout=10) == 0
    assert start_time(proc.pid) is None
    assert ref_for(proc.pid) is None
    assert describe(proc.pid) is None
    assert not is_alive(ref)
    assert signal_ref(ref, signal.SIGTERM) is False


def test_start_time_is_psutils_create_time_to_the_tick(procs: Spawner, tmp_path: Path) -> None:
    # Read from /proc without psutil, it must equal what psutil records elsewhere.
    import psutil

    proc = procs.spawn([PY, "-c", ECHO])
    assert procs.line(proc) == "ready"
    for pid in (os.getpid(), proc.pid, 1):
        assert start_time(pid) == psutil.Process(pid).create_time()
    # A program whose name holds ") " must not shift the fields read after it.
    odd = tmp_path / "a) b c d e f"
    odd.symlink_to(os.path.realpath(PY))
    proc = procs.spawn([str(odd), "-c", ECHO])
    assert procs.line(proc) == "ready"
    with open(f"/proc/{proc.pid}/stat", "rb") as stat:
        assert b"(a) b c d e f)" in stat.read()
    assert start_time(proc.pid) == psutil.Process(proc.pid).create_time()


def test_wrong_start_time_is_another_process_and_is_not_signalled(procs: Spawner) -> None:
    proc = procs.spawn([PY, "-c", ECHO])
    assert procs.line(proc) == "ready"
    ref = ref_for(proc.pid)
    assert ref is not None
    impostor = ProcessRef(proc.pid, ref.start_time - 3600)
    assert not is_alive(impostor)
    assert signal_ref(impostor, signal.SIGKILL) is False
    # A delivered SIGKILL would end it before it could answer.
    assert ping(procs, proc) == "pong"
    assert is_alive(ref)
    assert signal_ref(ref, signal.SIGTERM) is True
    assert proc.wait(timeout=10) == -signal.SIGTERM


def test_zombie_is_not_alive(procs: Spawner) -> None:
    proc = procs.spawn([PY, "-c", ECHO])
    assert procs.line(proc) == "ready"
    ref = ref_for(proc.pid)
    assert ref is not None
    assert proc.stdin is not None
    proc.stdin.close()  # it exits, and stays a zombie until we wait for it
    assert wait_for(lambda: not is_alive(ref)), "the program did not exit"
    assert start_time(proc.pid) is not None, "the zombie should still exist"
    assert signal_ref(ref, signal.SIGTERM) is False
    assert proc.wait(timeout=10) == 0


async def test_terminate_group_stops_every_member(procs: Spawner) -> None:
    proc = procs.spawn(["sh", "-c", "sleep 1000 & sleep 1000"])

    def sleepers() -> list[int]:
        return [p for p in group_pids(proc.pid) if describe(p) == f'pid {p} "sleep 1000"']

    assert wait_for(lambda: len(sleepers()) == 2), f"group: {group_pids(proc.pid)}"
    assert proc.pid in group_pids(proc.pid)
    t0 = time.monotonic()
    assert await terminate_group(proc.pid, grace=5.0) == []
    assert time.monotonic() - t0 < 5.0, "SIGTERM alone should have been enough"
    assert group_pids(proc.pid) == []
    with pytest.raises(ChildProcessError):  # our own child was reaped
        os.waitpid(proc.pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG never blocks)


async def test_terminate_group_kills_what_ignores_sigterm(procs: Spawner) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = procs.spawn([PY, "-c", code])
    assert procs.line(proc) == "ready"
    t0 = time.monotonic()
    assert await terminate_group(proc.pid, grace=0.3, reap=False) == []
    assert time.monotonic() - t0 >= 0.3
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert group_pids(proc.pid) == []


async def test_terminate_group_stops_setsid_grandchild_given_as_extra(procs: Spawner) -> None:
    grandchild = (  # independent of its parent's pipes: only a signal can end it
        "import signal\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    signal.pause()\n"
    )
    code = (
        "import subprocess, sys\n"
        f"gc = subprocess.Popen([sys.executable, '-c', {grandchild!r}], start_new_session=True,"
        " stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)\n"
        "gc.stdout.readline()\n"
        "print(gc.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = procs.spawn([PY, "-c", code])
    gc = procs.track(int(procs.line(proc)))
    assert os.getpgid(gc.pid) != proc.pid, "the grandchild should have left the group"
    extra = descendants(proc.pid)
    assert gc in extra
    assert await terminate_group(proc.pid, grace=0.3, extra=extra) == []
    assert not is_alive(gc)
    assert group_pids(proc.pid) == []


async def test_terminate_group_leaves_a_reused_group_number_alone(procs: Spawner) -> None:
    proc = procs.spawn([PY, "-c", ECHO])
    assert procs.line(proc) == "ready"
    ref = ref_for(proc.pid)
    assert ref is not None
    left = await terminate_group(proc.pid, grace=0.1, leader_start=ref.start_time - 3600)
    assert left == []
    assert ping(procs, proc) == "pong"
    assert await terminate_group(proc.pid, grace=5.0, leader_start=ref.start_time) == []
    assert not is_alive(ref)


@pytest.mark.parametrize("pgid", [0, 1, os.getpgrp()])
async def test_terminate_group_refuses_our_own_group(pgid: int) -> None:
    with pytest.raises(ValueError, match="refusing"):
        await terminate_group(pgid, grace=0.0)


def test_preexec_child_dies_with_its_parent(procs: Spawner) -> None:
    code = (
        "import subprocess, sys\n"
        "from sandbox.proc.processes import preexec_child\n"
        "child = subprocess.Popen(['sleep', '1000'], preexec_fn=preexec_child(),"
        " start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = procs.spawn([PY, "-c", code])
    child = procs.track(int(procs.line(proc)))
    assert is_alive(child)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert wait_for(lambda: not is_alive(child), timeout=5.0), "the child outlived its parent"


async def test_terminate_group_lets_a_stopped_program_exit_gracefully(procs: Spawner) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = procs.spawn([PY, "-c", code])
    assert procs.line(proc) == "ready"
    os.kill(proc.pid, signal.SIGSTOP)
    assert wait_for(lambda: _state_letter(proc.pid) == "T"), "it did not stop"
    assert await terminate_group(proc.pid, grace=5.0, reap=False) == []
    assert proc.wait(timeout=10) == 7, "its SIGTERM handler should have run (SIGCONT)"


def _state_letter(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rpartition(")")[2].split()[0]


async def test_terminate_group_does_not_block_the_event_loop(procs: Spawner) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = procs.spawn([PY, "-c", code])
    assert procs.line(proc) == "ready"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        assert await terminate_group(proc.pid, grace=0.3) == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert ticks >= 10, f"the loop ran only {ticks} times in 0.3 s"

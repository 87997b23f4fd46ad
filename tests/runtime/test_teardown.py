"""`down` from the record alone, against real processes: identities verified, leftovers found."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandbox.proc.processes import is_alive, ref_for
from sandbox.proc.ref import ProcessRef
from sandbox.runtime.state import SandboxRecord, ServiceRecord, StateDir
from sandbox.runtime.teardown import down, stop_supervisor, verify_refused
from tests.helpers import wait_until as wait_for


class Reaper:
    """Remembers processes by identity and SIGKILLs those still alive at the end."""

    def __init__(self) -> None:
        self.refs: list[ProcessRef] = []
        self.popens: list[subprocess.Popen[bytes]] = []

    def track(self, pid: int) -> ProcessRef:
        ref = ref_for(pid)
        assert ref is not None, f"pid {pid} is not running"
        self.refs.append(ref)
        return ref

    def cleanup(self) -> None:
        for ref in self.refs:
            if is_alive(ref):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(ref.pid, signal.SIGKILL)
        for proc in self.popens:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    keeper = Reaper()
    try:
        yield keeper
    finally:
        keeper.cleanup()


def _record(
    name: str, *services: ServiceRecord, supervisor: ProcessRef | None = None
) -> SandboxRecord:
    return SandboxRecord(
        name=name,
        profile=name,
        profile_path=None,
        supervisor=supervisor,
        started_at=time.time(),
        status="running",
        services=services,
    )


def _program(name: str, pid: int, start: float) -> ServiceRecord:
    return ServiceRecord(
        name=name, kind="command", address="127.0.0.1", port=0, url="", log="",
        pid=pid, pgid=pid, start_time=start,
    )  # fmt: skip


def _pid_in(path: Path) -> int | None:
    """The pid a file holds once it is completely written (a newline ends it)."""
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text()
        if text.endswith("\n"):
            return int(text)
    return None


def _stranger(reaper: Reaper) -> tuple[ProcessRef, ProcessRef]:
    """A process (in a session of its own) with a child: neither belongs to any sandbox."""
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, start_new_session=True
    )
    reaper.popens.append(proc)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    return reaper.track(proc.pid), reaper.track(child)


def test_down_leaves_the_children_of_a_reused_pid_alone(tmp_path: Path, reaper: Reaper) -> None:
    leader, child = _stranger(reaper)
    state = StateDir(tmp_path, "reused")
    # The recorded program had this pid (and group) once, but started an hour earlier.
    state.write(_record("reused", _program("db", leader.pid, leader.start_time - 3600)))
    report = asyncio.run(down(state, grace=1.0))
    assert report.clean, report.survivors
    assert is_alive(leader)
    assert is_alive(child)


def test_down_when_our_own_group_number_is_recorded(tmp_path: Path) -> None:
    me = os.getpgrp()
    started = ref_for(me)
    recorded = (started.start_time if started else time.time()) - 3600
    state = StateDir(tmp_path, "mine")
    state.write(_record("mine", _program("db", me, recorded)))
    report = asyncio.run(down(state, grace=1.0))
    assert report.clean, report.survivors
    assert not state.path.exists()


def test_down_ends_a_program_started_but_not_recorded_by_a_killed_supervisor(
    tmp_path: Path, reaper: Reaper
) -> None:
    root, hold, grandchild = tmp_path / "state", tmp_path / "held", tmp_path / "grandchild"
    profile = tmp_path / "window.yaml"
    run = f"sh -c 'sleep 300 & echo $! > {grandchild}; wait'"
    profile.write_text(yaml.safe_dump({
        "name": "window",
        "services": {"app": {"kind": "command", "address": "127.0.0.1", "port": "auto",
                             "run": run, "ready": {"timeout": 30}}},
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env |= {"SANDBOX_STATE_DIR": str(root), "SANDBOX_TEST_HOLD_AFTER_SPAWN": str(hold)}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", str(profile)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    reaper.popens.append(supervisor)
    wait_for(lambda: _pid_in(hold) is not None and _pid_in(grandchild) is not None, "the spawn")
    program = reaper.track(_pid_in(hold) or 0)
    left = reaper.track(_pid_in(grandchild) or 0)
    # The supervisor dies between starting the program and recording its pid.
    supervisor.kill()
    supervisor.wait(timeout=10)
    wait_for(lambda: not is_alive(program), "the parent-death signal")
    assert is_alive(left)  # a grandchild is beyond PR_SET_PDEATHSIG: only `down` can end it
    state = StateDir(root, "window")
    record = state.read()
    assert record is not None
    assert record.service("app") is not None
    assert record.service("app").pid is None  # type: ignore[union-attr]

    report = asyncio.run(down(state, grace=1.0))
    assert not is_alive(left)
    assert report.clean, report.survivors


def test_down_never_signals_another_users_group(tmp_path: Path, reaper: Reaper) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to start a process as another user")
    proc = subprocess.Popen(["sleep", "300"], user=65534, group=65534, start_new_session=True)
    reaper.popens.append(proc)
    ref = reaper.track(proc.pid)
    state = StateDir(tmp_path, "forged")
    # A record naming the other user's process with its true start time: still not ours.
    state.write(_record("forged", _program("db", ref.pid, ref.start_time)))
    asyncio.run(down(state, grace=0.5))
    assert is_alive(ref)


async def test_verification_waits_for_a_port_the_kernel_is_still_releasing() -> None:
    # A listener that goes away a moment after `down` starts checking, as the sockets of a
    # SIGKILLed process do: no false "still accepts connections".
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    svc = ServiceRecord(name="api", kind="http", address="127.0.0.1", port=port, url="", log="")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, sock.close)  # the release itself, not a readiness wait
    try:
        assert await verify_refused(_record("late", svc)) == []
    finally:
        sock.close()


async def test_a_port_still_held_is_reported_after_the_deadline() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        svc = ServiceRecord(
            name="api", kind="http", address="127.0.0.1", port=sock.getsockname()[1], url="",
            log="",
        )  # fmt: skip
        left = await verify_refused(_record("held", svc), settle=0.2)
    assert left == [f"api (127.0.0.1:{svc.port}) still accepts connections"]


def _supervisor_like(reaper: Reaper, *, ignore_term: bool) -> ProcessRef:
    """A process standing in for a supervisor; it says "ready" once its SIGTERM handling is set."""
    code = (
        "import signal, sys, time\n"
        f"if {ignore_term}: signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    reaper.popens.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return reaper.track(proc.pid)


async def test_stop_supervisor_returns_as_soon_as_it_exits(reaper: Reaper) -> None:
    ref = _supervisor_like(reaper, ignore_term=False)
    started = time.monotonic()
    assert await stop_supervisor(_record("quick", supervisor=ref), grace=30.0) is True
    assert time.monotonic() - started < 10.0  # its exit was noticed, not the grace waited out
    assert not is_alive(ref)


async def test_stop_supervisor_kills_one_that_ignores_sigterm(reaper: Reaper) -> None:
    ref = _supervisor_like(reaper, ignore_term=True)
    assert await stop_supervisor(_record("stubborn", supervisor=ref), grace=0.2) is True
    assert not is_alive(ref)


async def test_stop_supervisor_leaves_a_reused_pid_alone(reaper: Reaper) -> None:
    ref = _supervisor_like(reaper, ignore_term=False)
    stale = ProcessRef(ref.pid, ref.start_time - 3600.0)  # the record of an earlier process
    assert await stop_supervisor(_record("stale", supervisor=stale), grace=0.2) is False
    assert is_alive(ref)

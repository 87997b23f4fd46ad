"""State on disk: records, atomic writes, the state root, listing, removal and the lock."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from sandbox.errors import ConflictError, StateError, UsageError
from sandbox.runtime.state import (
    ProcessRef,
    SandboxLock,
    SandboxRecord,
    ServiceRecord,
    StateDir,
    is_locked,
    list_sandboxes,
    state_root,
)


def make_record(name: str = "demo", **changes: Any) -> SandboxRecord:
    web = ServiceRecord("web", "http", "127.0.0.2", 8080, "http://127.0.0.2:8080/", "/l/web.log")
    db = ServiceRecord(
        "db", "command", "::1", 5432, "tcp://[::1]:5432", "/l/db.log",
        pid=4242, pgid=4242, start_time=1700000000.25, restarts=2,
    )  # fmt: skip
    record = SandboxRecord(
        name=name,
        profile="web-db",
        profile_path="/p/web-db.yaml",
        supervisor=ProcessRef(4241, 1700000000.5),
        started_at=1700000000.75,
        status="running",
        services=(web, db),
    )
    return record.replace(**changes)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# -- records ------------------------------------------------------------------------------


def test_record_round_trips_through_json() -> None:
    record = make_record(foreground=True)
    data = json.loads(json.dumps(record.to_json()))
    assert data["services"][1]["pgid"] == 4242
    assert data["supervisor"] == {"pid": 4241, "start_time": 1700000000.5}
    assert SandboxRecord.from_json(data) == record
    assert SandboxRecord.from_json(data).services[1].process == ProcessRef(4242, 1700000000.25)
    assert SandboxRecord.from_json(data).services[0].process is None


def test_with_service_replaces_by_name_or_appends() -> None:
    record = make_record()
    moved = record.services[0].__class__(**{**record.services[0].to_json(), "port": 9000})
    updated = record.with_service(moved)
    assert [s.name for s in updated.services] == ["web", "db"]
    assert updated.service("web") == moved
    assert record.service("web") != moved  # frozen: the original is unchanged
    extra = ServiceRecord("cache", "tcp", "127.0.0.3", 6379, "tcp://127.0.0.3:6379", "")
    assert [s.name for s in updated.with_service(extra).services] == ["web", "db", "cache"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(colour="red"), "unknown key(s) in SandboxRecord: colour"),
        (lambda d: d.pop("status"), "missing key(s) in SandboxRecord: status"),
        (lambda d: d["services"][0].pop("port"), "missing key(s) in ServiceRecord: port"),
        (lambda d: d["services"][1].update(pid="4242"), 'ServiceRecord.pid is "4242"'),
        (lambda d: d["services"][1].update(pid=True), "ServiceRecord.pid is true"),
        (lambda d: d["supervisor"].update(uid=0), "unknown key(s) in ProcessRef: uid"),
        (lambda d: d.update(status="paused"), 'SandboxRecord.status is "paused"'),
        (lambda d: d.update(services={}), "SandboxRecord.services is {}"),
        (lambda d: d.update(started_at=None), "SandboxRecord.started_at is null"),
    ],
)
def test_bad_record_names_the_file_and_the_problem(mutate: Any, expected: str) -> None:
    data = make_record().to_json()
    mutate(data)
    with pytest.raises(StateError) as info:
        SandboxRecord.from_json(data, "/x/state.json")
    assert info.value.message.startswith("/x/state.json is not a valid sandbox record")
    assert expected in info.value.message
    assert info.value.hint


def test_defaulted_keys_may_be_absent_and_ints_pass_as_floats() -> None:
    data = make_record().to_json()
    del data["foreground"]
    del data["services"][1]["restarts"]
    data["started_at"] = 1700000000
    record = SandboxRecord.from_json(data)
    assert record.foreground is False
    assert record.services[1].restarts == 0
    assert record.started_at == 1700000000.0
    assert isinstance(record.started_at, float)


# -- the folder of one sandbox --------------------------------------------------------------


def test_write_then_read(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "demo")
    assert state.read() is None
    state.write(make_record())
    assert state.read() == make_record()
    assert state.state_file == tmp_path / "demo" / "state.json"
    assert state.log_path("web") == tmp_path / "demo" / "logs" / "web.log"
    assert state.logs_dir.is_dir()
    assert mode(state.path) == 0o700
    assert mode(state.state_file) == 0o600
    state.write(make_record(status="stopping"))
    assert state.read() == make_record(status="stopping")
    assert sorted(p.name for p in state.path.iterdir()) == ["logs", "state.json"]


def test_a_crash_while_writing_keeps_the_previous_record(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "demo")
    state.write(make_record())

    def crash(text: str, stream: IO[str]) -> None:
        stream.write(text[: len(text) // 2])
        stream.flush()
        raise KeyboardInterrupt  # the process is going down mid-write

    with pytest.raises(KeyboardInterrupt):
        state.write(make_record(status="stopping"), _dump=crash)
    assert state.read() == make_record()
    assert sorted(p.name for p in state.path.iterdir()) == ["logs", "state.json"]


def test_a_temp_file_left_by_a_killed_writer_is_ignored(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "demo")
    state.write(make_record())
    text = json.dumps(make_record(status="stopping").to_json())
    (state.path / ".state.json.abc123.tmp").write_text(text[:40])  # never renamed
    assert state.read() == make_record()
    assert [s.name for s in list_sandboxes(tmp_path)] == ["demo"]
    state.write(make_record(status="stopping"))
    assert state.read() == make_record(status="stopping")


def test_corrupt_json_names_the_file(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "demo")
    state.write(make_record())
    state.state_file.write_text('{"name": "demo", ')
    with pytest.raises(StateError, match="not a valid sandbox record") as info:
        state.read()
    assert str(state.state_file) in info.value.message
    assert "invalid JSON at line 1" in info.value.message


def test_a_record_in_the_wrong_folder_is_refused(tmp_path: Path) -> None:
    StateDir(tmp_path, "other").write(make_record("other"))
    (tmp_path / "demo").mkdir()
    (tmp_path / "other" / "state.json").rename(tmp_path / "demo" / "state.json")
    with pytest.raises(StateError, match="names sandbox 'other'"):
        StateDir(tmp_path, "demo").read()
    with pytest.raises(ValueError, match="does not belong"):
        StateDir(tmp_path, "demo").write(make_record("other"))


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "../escape"])
def test_names_that_are_not_plain_folder_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="not a valid sandbox name"):
        StateDir(tmp_path, name)
    with pytest.raises(UsageError, match="not a valid service name"):
        StateDir(tmp_path, "demo").log_path(name)


def test_list_sandboxes_sorted_and_only_with_a_record(tmp_path: Path) -> None:
    assert list_sandboxes(tmp_path / "missing") == []
    for name in ["web", "api", "db"]:
        StateDir(tmp_path, name).write(make_record(name))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "web")
    found = list_sandboxes(tmp_path)
    assert [s.name for s in found] == ["api", "db", "web"]
    assert found[0].read() == make_record("api")


def test_remove_deletes_the_folder_with_its_logs(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "demo")
    state.write(make_record())
    state.log_path("web").write_text("hello\n")
    state.remove()
    assert not state.path.exists()
    assert tmp_path.is_dir()
    state.remove()  # already gone: nothing happens
    assert list_sandboxes(tmp_path) == []


def test_remove_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    root = tmp_path / "root"
    root.mkdir()
    (root / "demo").symlink_to(elsewhere)
    with pytest.raises(StateError, match="Refusing to delete"):
        StateDir(root, "demo").remove()
    assert (elsewhere / "keep.txt").read_text() == "keep"


# -- the state root -------------------------------------------------------------------------


def test_state_root_precedence(tmp_path: Path) -> None:
    env = {
        "SANDBOX_STATE_DIR": str(tmp_path / "explicit"),
        "XDG_STATE_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
    }
    assert state_root(env) == tmp_path / "explicit"
    del env["SANDBOX_STATE_DIR"]
    assert state_root(env) == tmp_path / "xdg" / "sandbox"
    env["XDG_STATE_HOME"] = "relative/xdg"  # the XDG spec says: ignore a relative path
    assert state_root(env) == tmp_path / "home" / ".local" / "state" / "sandbox"
    del env["XDG_STATE_HOME"]
    assert state_root(env) == tmp_path / "home" / ".local" / "state" / "sandbox"


def test_state_root_is_created_private_with_its_parents(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        root = state_root({"HOME": str(tmp_path / "home")})
    finally:
        os.umask(old)
    for path in [root, root.parent, root.parent.parent, tmp_path / "home"]:
        assert mode(path) == 0o700, path
    tmp_path.chmod(0o755)
    state_root({"SANDBOX_STATE_DIR": str(tmp_path)})
    assert mode(tmp_path) == 0o755, "an existing folder is left as it is"


def test_state_root_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match="cannot be created") as info:
        state_root({"SANDBOX_STATE_DIR": str(tmp_path / "file")})
    assert "SANDBOX_STATE_DIR" in (info.value.hint or "")
    with pytest.raises(StateError, match="cannot be created"):
        state_root({"SANDBOX_STATE_DIR": str(tmp_path / "file" / "below")})


# -- the lock --------------------------------------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
from sandbox.runtime.state import SandboxLock
lock = SandboxLock(Path(sys.argv[1]), "demo").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A separate process holding the lock of sandbox "demo" under tmp_path."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 10
        while not select.select([proc.stdout], [], [], 0.1)[0]:
            assert time.monotonic() < deadline, "the holder never took the lock"
        assert proc.stdout.readline() == b"locked\n"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_a_second_process_is_refused_until_the_holder_is_killed(
    tmp_path: Path, holder: subprocess.Popen[bytes]
) -> None:
    assert is_locked(tmp_path, "demo")
    with pytest.raises(ConflictError) as info:
        SandboxLock(tmp_path, "demo").acquire()
    assert info.value.message == f'sandbox "demo" is already running (supervisor pid {holder.pid}).'
    assert "`sandbox status demo`" in (info.value.hint or "")
    assert "`sandbox down demo`" in (info.value.hint or "")
    assert is_locked(tmp_path, "demo"), "a refused acquire must not disturb the holder"

    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL
    assert not is_locked(tmp_path, "demo")
    with SandboxLock(tmp_path, "demo") as lock:
        assert lock.held
        assert is_locked(tmp_path, "demo")
        assert lock.path.read_text() == f"{os.getpid()}\n"
    assert not lock.held
    assert not is_locked(tmp_path, "demo")


def test_the_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    assert not is_locked(tmp_path, "demo")
    assert not (tmp_path / "demo").exists(), "is_locked creates nothing"
    lock = StateDir(tmp_path, "demo").lock().acquire()
    try:
        with pytest.raises(ConflictError, match=f"supervisor pid {os.getpid()}"):
            SandboxLock(tmp_path, "demo").acquire(wait=0.05)
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    finally:
        lock.release()
    lock.release()  # releasing twice is harmless
    assert lock.path.read_text() == ""


def test_programs_we_start_do_not_inherit_the_lock(tmp_path: Path) -> None:
    lock = SandboxLock(tmp_path, "demo").acquire()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        close_fds=False,
        start_new_session=True,
    )
    try:
        lock.release()
        assert not is_locked(tmp_path, "demo"), "the child kept the lock"
    finally:
        lock.release()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)


def test_removing_the_folder_under_a_held_lock_leaves_nothing_stale(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "demo")
    lock = state.lock().acquire()
    try:
        state.write(make_record())
        state.remove()  # what `up` does on its way out, lock still held
    finally:
        lock.release()
    with state.lock() as again:
        assert again.held
        assert again.path.is_file()


async def test_many_stubs_becoming_ready_make_few_writes_of_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spare_loopback: Any
) -> None:
    """Each write holds every service: one per service ready made `up` quadratic (a thousand
    stubs took 12 s). The record still ends with every service ready."""
    from sandbox.profile.loader import load_profile_data
    from sandbox.runtime.sandbox import Sandbox

    writes: list[str] = []
    real_write = StateDir.write

    def counting(self: StateDir, record: SandboxRecord, **kw: Any) -> None:
        writes.append(record.status)
        real_write(self, record, **kw)

    monkeypatch.setattr(StateDir, "write", counting)
    addresses = spare_loopback(200)
    services = {f"s{i}": {"kind": "http", "address": str(a)} for i, a in enumerate(addresses)}
    profile = load_profile_data({"name": "many", "services": services})
    sandbox = Sandbox(profile, state_root=tmp_path / "state")
    await sandbox.start()
    try:
        assert 2 <= len(writes) <= 12, writes
        record = StateDir(tmp_path / "state", "many").read()
        assert record is not None
        assert record.status == "running"
        assert len(record.services) == 200
        assert {s.state for s in record.services} == {"ready"}
    finally:
        await sandbox.stop()

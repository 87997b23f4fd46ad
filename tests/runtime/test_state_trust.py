"""An existing state folder is not trusted: foreign or writable folders and planted links are
refused, and nothing outside the folder is ever written through them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.errors import StateError
from sandbox.runtime.private import open_log
from sandbox.runtime.state import SandboxRecord, StateDir, is_locked, state_root

OTHER_UID = 65534  # nobody


def _record(name: str) -> SandboxRecord:
    return SandboxRecord(
        name=name, profile=name, profile_path=None, supervisor=None,
        started_at=1.0, status="running", services=(),
    )  # fmt: skip


def _needs_root() -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give a folder to another user")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the state folder that planted links point at: it must not change."""
    path = tmp_path / "precious.txt"
    path.write_text("keep me\n")
    return path


def test_a_state_root_writable_by_others_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(StateError, match="writable by others"):
        state_root({"SANDBOX_STATE_DIR": str(root)})


def test_a_state_root_of_another_user_is_refused(tmp_path: Path) -> None:
    _needs_root()
    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, OTHER_UID, OTHER_UID)
    with pytest.raises(StateError, match="belongs to uid 65534"):
        state_root({"SANDBOX_STATE_DIR": str(root)})


def test_a_sandbox_folder_of_another_user_is_not_read_or_locked(tmp_path: Path) -> None:
    _needs_root()
    state = StateDir(tmp_path, "forged")
    state.write(_record("forged"))
    os.chown(state.path, OTHER_UID, OTHER_UID)
    with pytest.raises(StateError, match="Refusing the state folder"):
        state.read()
    with pytest.raises(StateError, match="Refusing the state folder"):
        state.lock().acquire()


def test_a_world_writable_sandbox_folder_is_refused(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "open")
    state.write(_record("open"))
    state.path.chmod(0o777)
    with pytest.raises(StateError, match="writable by others"):
        state.read()
    with pytest.raises(StateError, match="writable by others"):
        state.write(_record("open"))


def test_a_sandbox_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "root").mkdir(mode=0o700)
    (tmp_path / "root" / "linked").symlink_to(elsewhere)
    with pytest.raises(StateError, match="symbolic link"):
        StateDir(tmp_path / "root", "linked").read()


def test_a_planted_record_link_is_not_followed(tmp_path: Path, outside: Path) -> None:
    state = StateDir(tmp_path, "planted")
    state.write(_record("planted"))
    state.state_file.unlink()
    state.state_file.symlink_to(outside)
    with pytest.raises(StateError, match="symbolic link"):
        state.read()


def test_a_planted_lock_link_truncates_nothing(tmp_path: Path, outside: Path) -> None:
    state = StateDir(tmp_path, "planted")
    state.write(_record("planted"))
    state.lock_file.symlink_to(outside)
    with pytest.raises(StateError, match="symbolic link"):
        state.lock().acquire()
    with pytest.raises(StateError, match="symbolic link"):
        is_locked(tmp_path, "planted")
    assert outside.read_text() == "keep me\n"


def test_a_planted_log_link_receives_nothing(tmp_path: Path, outside: Path) -> None:
    state = StateDir(tmp_path, "planted")
    state.write(_record("planted"))
    state.log_path("api").symlink_to(outside)
    with pytest.raises(StateError, match="symbolic link"):
        open_log(state.log_path("api"))
    assert outside.read_text() == "keep me\n"


def test_a_fifo_planted_as_the_record_does_not_hang(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "fifo")
    state.write(_record("fifo"))
    state.state_file.unlink()
    os.mkfifo(state.state_file)
    with pytest.raises(StateError, match="not a regular file"):
        state.read()


def test_logs_are_appended_in_a_private_folder(tmp_path: Path) -> None:
    state = StateDir(tmp_path, "fine")
    state.write(_record("fine"))
    with open_log(state.log_path("api")) as stream:
        stream.write("one\n")
    with open_log(state.log_path("api")) as stream:
        stream.write("two\n")
    assert state.log_path("api").read_text() == "one\ntwo\n"

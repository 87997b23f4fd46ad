"""Hostile profile files are refused quickly (exit 3), never a hang or a memory blow-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.errors import ExitCode, ProfileError
from sandbox.profile.loader import discover, load_profile, load_profile_text
from sandbox.profile.yaml_marks import MAX_BYTES

# The billion laughs: 9 aliases of 9 aliases, nine levels deep, in about 500 bytes.
BOMB = (
    "name: bomb\nservices: {}\n"
    + "a0: &a0 [x]\n"
    + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
)
MERGES = (
    "name: m\n"
    + "m0: &m0 {k: v}\n"
    + "".join(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}\n" for i in range(1, 10))
)


def cli(cwd: Path, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env |= {"SANDBOX_STATE_DIR": str(cwd / "state"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def refused_quickly(load: object, *args: object) -> ProfileError:
    t0 = time.perf_counter()
    with pytest.raises(ProfileError) as info:
        load(*args)  # type: ignore[operator]
    assert time.perf_counter() - t0 < 1.0
    assert info.value.exit_code == ExitCode.INVALID_PROFILE
    return info.value


def test_an_alias_bomb_is_refused_at_once_with_its_place() -> None:
    assert len(BOMB) < 600
    error = refused_quickly(load_profile_text, BOMB, "bomb.yaml")
    assert len(error.problems) == 1
    assert error.problems[0].startswith("bomb.yaml:")
    assert "aliases" in error.problems[0]


def test_a_merge_bomb_is_refused_at_once() -> None:
    error = refused_quickly(load_profile_text, MERGES, "m.yaml")
    assert "merges" in error.problems[0]


def test_deep_nesting_is_refused() -> None:
    text = "name: deep\nservices: {}\nx: " + "[" * 60 + "]" * 60 + "\n"
    error = refused_quickly(load_profile_text, text, "deep.yaml")
    assert "nest more than" in error.problems[0]
    assert error.problems[0].startswith("deep.yaml:3:")


def test_an_alias_bomb_through_the_cli_exits_3_in_well_under_a_second(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB)
    t0 = time.perf_counter()
    done = cli(tmp_path, "validate", "bomb.yaml")
    assert done.returncode == 3, done.stderr
    assert time.perf_counter() - t0 < 5.0  # the interpreter's start included
    assert "bomb.yaml:" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_fifo_is_refused_through_the_cli(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    done = cli(tmp_path, "validate", "pipe.yaml")
    assert done.returncode == 3, done.stderr
    assert "FIFO" in done.stderr


def test_a_device_is_refused(tmp_path: Path) -> None:
    error = refused_quickly(load_profile, "/dev/zero")
    assert "not a regular file" in error.problems[0]


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: big\n" + "#" * MAX_BYTES + "\n")
    error = refused_quickly(load_profile, path)
    assert "at most" in error.problems[0]


def test_a_bomb_among_the_profiles_is_listed_with_its_error_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(BOMB)
    os.mkfifo(folder / "pipe.yaml")
    t0 = time.perf_counter()
    found = {f.name: f for f in discover(search=[folder])}
    assert time.perf_counter() - t0 < 1.0
    assert "aliases" in (found["bomb"].error or "")
    done = cli(tmp_path, "profiles")
    assert done.returncode == 0, done.stderr
    assert "bomb" in done.stdout

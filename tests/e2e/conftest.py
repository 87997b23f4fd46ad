"""Drive the real CLI in subprocesses, each test with a state directory of its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml


@dataclass
class Cli:
    """Runs `python -m sandbox ...` with SANDBOX_STATE_DIR pointing into the test's tmp_path."""

    state: Path
    cwd: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
        env["SANDBOX_STATE_DIR"] = str(self.state)
        env["NO_COLOR"] = "1"
        return env

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sandbox", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.cwd,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.stdout, done.stderr
        return json.loads(done.stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "sandbox", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )


def _kill_recorded(state: Path) -> None:
    """Last resort after a failed test: SIGKILL every supervisor still recorded."""
    for record in state.glob("*/state.json"):
        try:
            data = json.loads(record.read_text())
            pid = data["supervisor"]["pid"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(state=tmp_path / "state", cwd=tmp_path)
    try:
        yield runner
    finally:
        runner("down", "--all", "--grace", "1")
        _kill_recorded(runner.state)


@pytest.fixture
def write_profile(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write

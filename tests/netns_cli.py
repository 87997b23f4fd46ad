"""A private network namespace that lives for a block, with the sandbox CLI run inside it.

Labs and the tutorial use fixed, documented ports; running them here keeps them from
clashing with anything on the host.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.net.addresses import format_hostport
from tests.e2e.conftest import Cli, _kill_recorded
from tests.netns import ROOT

_NS_READY_TIMEOUT = 10.0


@dataclass
class NamespacedCli(Cli):
    """Runs `python -m sandbox ...` (and Python snippets) inside one private network namespace.

    The namespace is kept alive by a `cat` reading a pipe; closing the pipe ends it.
    """

    keeper: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        # The cwd is elsewhere: keep `tests.*` importable for snippets run in the namespace.
        return {**super().env, "PYTHONPATH": str(ROOT)}

    def argv(self, *args: str) -> list[str]:
        assert self.keeper is not None
        return ["nsenter", f"--net=/proc/{self.keeper.pid}/ns/net", "--", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Any program in the namespace; stdout and stderr kept apart."""
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.cwd,
            check=False,
        )

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "sandbox", *args, timeout=timeout)

    def python(self, code: str) -> Any:
        """Run `code` in the namespace; return the JSON it printed last."""
        done = self.run(sys.executable, "-c", code)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def listening(self) -> set[str]:
        """Every TCP address:port listening in the namespace."""
        listeners = self.json("ports")["listeners"]
        return {
            format_hostport(x["address"], x["port"]) for x in listeners if x["protocol"] == "tcp"
        }


@contextlib.contextmanager
def private_netns(tmp_path: Path) -> Iterator[NamespacedCli]:
    """A fresh network namespace (loopback up) for the block; every sandbox recorded in it is
    brought down and its supervisor killed on the way out, then the namespace ends."""
    keeper = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with keeper:
        assert keeper.stdin is not None
        assert keeper.stdout is not None
        ready, _, _ = select.select([keeper.stdout], [], [], _NS_READY_TIMEOUT)
        line = keeper.stdout.readline() if ready else b""
        if line.strip() != b"up":
            keeper.kill()
            pytest.fail(f"the namespace did not come up: {line!r}")
        cwd = tmp_path / "work"
        cwd.mkdir(exist_ok=True)
        cli = NamespacedCli(state=tmp_path / "state", cwd=cwd, keeper=keeper)
        try:
            yield cli
        finally:
            cli("down", "--all", "--grace", "1")
            _kill_recorded(cli.state)
            keeper.stdin.close()
            keeper.wait(timeout=10)

"""Run Python inside a private network namespace: the only place a test may hold 0.0.0.0 or [::]."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_REASON = (
    "needs a private network namespace (`unshare --net` and `ip`), which this machine does "
    "not allow: run as root, or where unprivileged user namespaces are enabled"
)


@functools.cache
def netns_available() -> bool:
    """True when `unshare --net` works here and `ip` exists (checked once per run)."""
    if not (shutil.which("unshare") and shutil.which("ip") and shutil.which("sh")):
        return False
    try:
        done = subprocess.run(
            ["unshare", "--net", "ip", "link", "set", "lo", "up"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# For tests that cannot carry the `netns` marker (conftest.py skips marked ones itself).
requires_netns = pytest.mark.skipif(not netns_available(), reason=SKIP_REASON)


def run_in_netns(
    python_code: str,
    timeout: float = 20,
    *,
    setup: str = "ip link set lo up",
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `python -c python_code` (this interpreter, cwd at the repository root) in a new
    network namespace, after the shell commands `setup` ran there; `prefix` goes before the
    interpreter (e.g. `setpriv ...`). The namespace dies with the child; on timeout the child
    is killed and subprocess.TimeoutExpired raised.
    """
    script = f'{setup} && exec "$@"' if setup else 'exec "$@"'
    command = ["unshare", "--net", "sh", "-c", script, "netns", *prefix]
    return subprocess.run(
        [*command, sys.executable, "-c", python_code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def netns_json(python_code: str, timeout: float = 20, **kwargs: Any) -> Any:
    """Run `python_code` as run_in_netns does and return the JSON it printed last.

    Fails the calling test (with the child's stderr) if the child did not exit 0.
    """
    done = run_in_netns(python_code, timeout, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"the namespaced child exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])

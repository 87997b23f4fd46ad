"""Starting a detached supervisor and hearing back from it, with nothing heavy imported.

`Launch` starts `python -m sandbox.runtime.supervisor` in its own session, hands it the
profile (pickled on its stdin, or the path of its file) and waits on a pipe for one JSON
line: ready (with the status of every service and what --on-conflict moved), or the error
that stopped it (after it tore down what it had started). Progress lines
(`{"progress": ...}`, at most one per service ready, at least 20 ms apart) may come first.

Only the standard library, sandbox.errors and runtime.private are imported here: `up -d`
starts the supervisor before it loads anything else, so the two processes' imports overlap.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError, error_from_json
from sandbox.runtime.private import check_private, open_private, private_dir

if TYPE_CHECKING:
    from sandbox.profile.models import Profile

# Environment switch for every stub's request log (same as `--no-request-log`).
REQUEST_LOG_ENV = "SANDBOX_REQUEST_LOG"


def request_log_default() -> bool:
    """False when $SANDBOX_REQUEST_LOG is 0, no, off or false; True otherwise."""
    return os.environ.get(REQUEST_LOG_ENV, "1").strip().lower() not in {"0", "no", "off", "false"}


class Launch:
    """A supervisor started for `profile` (validated, loaded from a file; or the path of a
    profile file, which it then loads and validates itself), whose ready message is yet to
    be read: the caller may do other work (import what it prints with) meanwhile.

    `expect_name`: the name the caller read from the file; the supervisor refuses a profile
    that says otherwise (it changed in between).
    """

    def __init__(
        self,
        profile: Profile | str,
        *,
        name: str,
        state_root: Path,
        on_conflict: str,
        wait_timeout: float,
        request_log: bool = True,
        expect_name: str | None = None,
    ) -> None:
        self.name = name
        self.log_dir = state_root / name
        self.wait_timeout = wait_timeout
        private_dir(self.log_dir)
        check_private(self.log_dir)
        by_path = isinstance(profile, str)
        cmd = [
            sys.executable, "-m", "sandbox.runtime.supervisor",
            *(["--profile", profile] if isinstance(profile, str) else ["--profile-stdin"]),
            "--name", name, "--state-root", str(state_root),
            "--on-conflict", on_conflict, "--wait-timeout", str(wait_timeout),
        ]  # fmt: skip
        if not request_log:
            cmd.append("--no-request-log")
        if expect_name is not None:
            cmd += ["--expect-name", expect_name]
        self._read_fd, write_fd = os.pipe()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            with os.fdopen(open_private(self.log_dir / "supervisor.log", flags), "ab") as log:
                self.proc = subprocess.Popen(
                    [*cmd, "--ready-fd", str(write_fd)],
                    stdin=subprocess.DEVNULL if by_path else subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                )
        except BaseException:
            os.close(self._read_fd)
            raise
        finally:
            os.close(write_fd)
        if self.proc.stdin is not None:
            try:
                import pickle

                # The child reads it all before anything else, so this cannot block for long.
                self.proc.stdin.write(pickle.dumps(profile, protocol=pickle.HIGHEST_PROTOCOL))
                self.proc.stdin.close()
            except BrokenPipeError:  # it died at once; the empty ready line says so
                pass

    def ready(
        self, on_progress: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, object]:
        """The supervisor's ready message, which holds the status of every service; raises
        the error it reported (a ProfileError too). Leaves the supervisor running on success;
        on failure it has already stopped everything.

        Before that line, the supervisor reports each service that became ready;
        `on_progress` receives those reports ({"ready": n, "total": m, "service": name}).
        """
        deadline = time.monotonic() + self.wait_timeout + 15.0
        try:
            lines = _read_lines(self._read_fd, deadline=deadline)
            line = next(lines, "")
            while line.startswith('{"progress"'):
                if on_progress is not None:
                    on_progress(json.loads(line)["progress"])
                line = next(lines, "")
        finally:
            os.close(self._read_fd)
        name, proc = self.name, self.proc
        if not line:
            code = proc.poll()
            tail = _tail(self.log_dir / "supervisor.log")
            raise SandboxError(
                f"the supervisor of {name} stopped before it said it was ready"
                + (f" (exit code {code})" if code is not None else "")
                + (f":\n{tail}" if tail else "."),
                "Run it in the foreground (`sandbox up` without -d) to see what happens.",
            )
        message: dict[str, object] = json.loads(line)
        if not message.get("ok"):
            proc.wait(timeout=10)
            error = message.get("error")
            if not isinstance(error, dict):
                raise SandboxError(f"the supervisor of {name} stopped with an unreadable report.")
            raise error_from_json(error)
        return message


def ready_status(ready: dict[str, object]) -> dict[str, Any]:
    """The sandbox's status in a supervisor's ready message, with `moves`: what
    --on-conflict moved. It comes from the supervisor's own readiness probes: the CLI
    probes nothing again."""
    status = ready["status"]
    assert isinstance(status, dict), "the supervisor's ready line always holds its status"
    return {**status, "moves": ready.get("moves", [])}


def _read_lines(fd: int, *, deadline: float) -> Iterator[str]:
    """Each complete line from `fd` until end of file or `deadline`."""
    buffer = b""
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode("utf-8", "replace")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer += chunk


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("  " + line for line in text.splitlines()[-lines:])

"""The detached supervisor: a process in its own session that hosts a sandbox until told to stop.

`spawn()` starts it and waits on a pipe for one JSON line: ready (with what --on-conflict
moved), or the error that stopped it (after it tore down what it had started). Progress
lines (`{"progress": ...}`, one per service ready) may come first.
`python -m sandbox.runtime.supervisor` is the child side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError, error_from_json, error_to_json
from sandbox.runtime.events import Event, ServiceReady, ServiceStopped
from sandbox.runtime.private import check_private, open_private, private_dir

log = logging.getLogger("sandbox.supervisor")


def spawn(
    profile_path: str,
    *,
    name: str,
    state_root: Path,
    on_conflict: str,
    wait_timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, object]:
    """Start a supervisor and return its ready message; raise the error it reported.

    Before that line, the supervisor reports each service that became ready; `on_progress`
    receives those reports ({"ready": n, "total": m, "service": name}).
    Leaves the supervisor running on success; on failure it has already stopped everything.
    """
    read_fd, write_fd = os.pipe()
    log_dir = state_root / name
    private_dir(log_dir)
    check_private(log_dir)
    cmd = [
        sys.executable, "-m", "sandbox.runtime.supervisor",
        "--profile", profile_path, "--name", name, "--state-root", str(state_root),
        "--on-conflict", on_conflict, "--wait-timeout", str(wait_timeout),
        "--ready-fd", str(write_fd),
    ]  # fmt: skip
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with os.fdopen(open_private(log_dir / "supervisor.log", flags), "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    os.close(write_fd)
    deadline = time.monotonic() + wait_timeout + 15.0
    try:
        lines = _read_lines(read_fd, deadline=deadline)
        line = next(lines, "")
        while line.startswith('{"progress"'):
            if on_progress is not None:
                on_progress(json.loads(line)["progress"])
            line = next(lines, "")
    finally:
        os.close(read_fd)
    if not line:
        code = proc.poll()
        tail = _tail(log_dir / "supervisor.log")
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


def _log_event(event: Event) -> None:
    # Service output already goes to each service's own log; writing every line here too
    # cost about a fifth of a stub's throughput (bench/RESULTS.md).
    if isinstance(event, ServiceReady):
        log.info("ready: %s at %s", event.service, event.url)
    elif isinstance(event, ServiceStopped):
        log.info("stopped: %s", event.service)


async def _supervise(args: argparse.Namespace) -> int:
    from sandbox.profile.loader import load_profile
    from sandbox.runtime.requests import serve_restarts
    from sandbox.runtime.sandbox import Sandbox
    from sandbox.runtime.state import StateDir

    ready_fd: int = args.ready_fd
    ready: list[str] = []
    total = 0

    def progress(event: Event) -> None:
        _log_event(event)
        if isinstance(event, ServiceReady) and ready_fd >= 0:
            ready.append(event.service)
            line = {"progress": {"ready": len(ready), "total": total, "service": event.service}}
            with contextlib.suppress(OSError):  # the waiting `up -d` went away: go on
                os.write(ready_fd, (json.dumps(line) + "\n").encode())

    def report(message: dict[str, object]) -> None:
        nonlocal ready_fd
        if ready_fd >= 0:
            os.write(ready_fd, (json.dumps(message) + "\n").encode())
            os.close(ready_fd)
            ready_fd = -1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        profile = load_profile(args.profile)
        total = len(profile.services)
        sandbox = Sandbox(
            profile,
            name=args.name,
            on_conflict=args.on_conflict,
            state_root=Path(args.state_root),
            wait_timeout=args.wait_timeout,
            emit=progress,
            foreground=False,
        )
        # Before the start: a SIGUSR1 without a handler would end the supervisor.
        serve_restarts(sandbox, StateDir(Path(args.state_root), sandbox.name))
        await sandbox.start()
    except SandboxError as exc:
        report({"ok": False, "error": error_to_json(exc)})
        return int(exc.exit_code)
    log.info("sandbox %s ready (pid %d)", args.name, os.getpid())
    moves = [m.to_json() for m in sandbox.plan.moves] if sandbox.plan else []
    report({"ok": True, "name": args.name, "pid": os.getpid(), "moves": moves})
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await sandbox.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox-supervisor")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-root", required=True)
    parser.add_argument("--on-conflict", default="fail")
    parser.add_argument("--wait-timeout", type=float, default=30.0)
    parser.add_argument("--ready-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    # stdout and stderr both go to supervisor.log (see spawn)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    return asyncio.run(_supervise(args))


if __name__ == "__main__":
    sys.exit(main())

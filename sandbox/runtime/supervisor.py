"""The detached supervisor: a process in its own session that hosts a sandbox until told to stop.

`spawn()` starts it, hands it the profile the CLI already validated (pickled, on its stdin:
the supervisor neither parses nor validates it again) and waits on a pipe for one JSON line:
ready (with the status of every service and what --on-conflict moved), or the error that
stopped it (after it tore down what it had started). Progress lines (`{"progress": ...}`,
one per service ready) may come first. `python -m sandbox.runtime.supervisor` is the child
side; given `--profile PATH` instead of `--profile-stdin` it loads the file itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError, error_from_json, error_to_json
from sandbox.runtime.events import Event, ServiceReady, ServiceStopped
from sandbox.runtime.private import check_private, open_private, private_dir

log = logging.getLogger("sandbox.supervisor")

if TYPE_CHECKING:
    from sandbox.profile.models import Profile
    from sandbox.runtime.sandbox import Sandbox

# Environment switch for every stub's request log (same as `--no-request-log`).
REQUEST_LOG_ENV = "SANDBOX_REQUEST_LOG"


def request_log_default() -> bool:
    """False when $SANDBOX_REQUEST_LOG is 0, no, off or false; True otherwise."""
    return os.environ.get(REQUEST_LOG_ENV, "1").strip().lower() not in {"0", "no", "off", "false"}


def spawn(
    profile: Profile | str,
    *,
    name: str,
    state_root: Path,
    on_conflict: str,
    wait_timeout: float,
    request_log: bool = True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    expect_name: str | None = None,
) -> dict[str, object]:
    """Start a supervisor for `profile` (validated, loaded from a file; or the path of a
    profile file, which it then loads and validates itself) and return its ready message,
    which holds the status of every service; raise the error it reported (a ProfileError
    too). `expect_name`: the name the caller read from the file; the supervisor refuses a
    profile that says otherwise (it changed in between).

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
        *(["--profile", profile] if isinstance(profile, str) else ["--profile-stdin"]),
        "--name", name, "--state-root", str(state_root),
        "--on-conflict", on_conflict, "--wait-timeout", str(wait_timeout),
        "--ready-fd", str(write_fd),
    ]  # fmt: skip
    if not request_log:
        cmd.append("--no-request-log")
    if expect_name is not None:
        cmd += ["--expect-name", expect_name]
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with os.fdopen(open_private(log_dir / "supervisor.log", flags), "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL if isinstance(profile, str) else subprocess.PIPE,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    os.close(write_fd)
    if proc.stdin is not None:
        try:
            # The child reads it all before anything else, so this cannot block for long.
            proc.stdin.write(pickle.dumps(profile, protocol=pickle.HIGHEST_PROTOCOL))
            proc.stdin.close()
        except BrokenPipeError:  # it died at once; the empty ready line below says so
            pass
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


def _read_profile(args: argparse.Namespace) -> Profile:
    if args.profile_stdin:
        # Validated by the CLI that spawned us, which wrote it on our stdin (a pipe only it
        # holds): unpickling makes the same models without parsing or validating again.
        profile: Profile = pickle.loads(sys.stdin.buffer.read())
        return profile
    from sandbox.profile.loader import load_profile

    return load_profile(args.profile)


def _status(sandbox: Sandbox) -> dict[str, object]:
    """The sandbox's status from its own readiness probes: the CLI need not probe again."""
    from sandbox.runtime.status import SandboxStatus, ServiceStatus

    services = []
    for running in sandbox.services.values():
        assert running.ready is not None  # every service passed its readiness probe
        services.append(ServiceStatus(running.record(), running.ready))
    return SandboxStatus(sandbox.record(), alive=True, services=tuple(services)).to_json()


def _log_event(event: Event) -> None:
    # Service output already goes to each service's own log; writing every line here too
    # cost about a fifth of a stub's throughput (bench/RESULTS.md).
    if isinstance(event, ServiceReady):
        log.info("ready: %s at %s", event.service, event.url)
    elif isinstance(event, ServiceStopped):
        log.info("stopped: %s", event.service)


async def _supervise(args: argparse.Namespace) -> int:
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
    # What is loaded and started now lives as long as the process: keep the collector from
    # walking it again and again while a thousand stubs start (about 0.5 s at 1000 stubs).
    gc.disable()
    try:
        profile = _read_profile(args)
        if args.expect_name is not None and profile.name != args.expect_name:
            raise SandboxError(
                f"{profile.source} changed while `up` started: it is now named "
                f'"{profile.name}", not "{args.expect_name}".',
                "Run the command again.",
            )
        total = len(profile.services)
        sandbox = Sandbox(
            profile,
            name=args.name,
            on_conflict=args.on_conflict,
            state_root=Path(args.state_root),
            wait_timeout=args.wait_timeout,
            emit=progress,
            foreground=False,
            log_lines=False,
            request_log=args.request_log,
        )
        # Before the start: a SIGUSR1 without a handler would end the supervisor.
        serve_restarts(sandbox, StateDir(Path(args.state_root), sandbox.name))
        await sandbox.start()
    except SandboxError as exc:
        report({"ok": False, "error": error_to_json(exc)})
        return int(exc.exit_code)
    gc.freeze()  # what exists now is never garbage: the collector leaves it alone from now on
    gc.enable()
    log.info("sandbox %s ready (pid %d)", args.name, os.getpid())
    moves = [m.to_json() for m in sandbox.plan.moves] if sandbox.plan else []
    status = _status(sandbox)
    report({"ok": True, "name": args.name, "pid": os.getpid(), "moves": moves, "status": status})
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await sandbox.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox-supervisor")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--profile", help="a profile file to load")
    source.add_argument("--profile-stdin", action="store_true", help="a pickled Profile")
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-root", required=True)
    parser.add_argument("--on-conflict", default="fail")
    parser.add_argument("--wait-timeout", type=float, default=30.0)
    parser.add_argument("--ready-fd", type=int, default=-1)
    parser.add_argument("--no-request-log", dest="request_log", action="store_false")
    parser.add_argument("--expect-name", help="refuse a profile by another name")
    args = parser.parse_args(argv)
    # stdout and stderr both go to supervisor.log (see spawn)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    return run(_supervise(args))


# Set to 1 to run the supervisor on uvloop (the optional `fast` extra) when it is installed.
UVLOOP_ENV = "SANDBOX_UVLOOP"


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run the supervisor's coroutine on asyncio's loop, or on uvloop when SANDBOX_UVLOOP=1
    and it is installed. Opt-in: it answers more requests per second (bench/RESULTS.md),
    but a readiness probe with a very short `ready.timeout` was seen to miss it."""
    if os.environ.get(UVLOOP_ENV, "").strip().lower() in {"1", "yes", "on", "true"}:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            code: int = uvloop.run(main)  # typed only where uvloop is installed
            return code
    return asyncio.run(main)


if __name__ == "__main__":
    code = main()
    # Everything is stopped and every log closed: skip the interpreter's teardown of a
    # thousand objects (about 60 ms that `sandbox down` would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

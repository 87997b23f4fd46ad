"""The detached supervisor: a process in its own session that hosts a sandbox until told to stop.

This is the child side (`python -m sandbox.runtime.supervisor`); sandbox.runtime.launch
starts it and reads its reports. It is given the profile pickled on its stdin (validated
by the CLI: it neither parses nor validates it again), or `--profile PATH`, which it then
loads and validates itself.
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
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError, error_to_json
from sandbox.runtime.events import Event, ServiceReady, ServiceStopped

log = logging.getLogger("sandbox.supervisor")

PROGRESS_EVERY = 0.02  # seconds between progress reports to the waiting `up -d`
SETTLE = 0.25  # seconds after ready before the collector runs, once, and is turned on

if TYPE_CHECKING:
    from sandbox.profile.models import Profile
    from sandbox.runtime.sandbox import Sandbox


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


def _settle() -> None:
    gc.collect()
    gc.freeze()
    gc.enable()


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
    last_said = 0.0

    def progress(event: Event) -> None:
        nonlocal last_said
        _log_event(event)
        if isinstance(event, ServiceReady) and ready_fd >= 0:
            ready.append(event.service)
            now = time.monotonic()
            if now - last_said < PROGRESS_EVERY and len(ready) < total:
                return  # a bar redrawn a thousand times a second shows nothing more
            last_said = now
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
    log.info("sandbox %s ready (pid %d)", args.name, os.getpid())
    moves = [m.to_json() for m in sandbox.plan.moves] if sandbox.plan else []
    status = _status(sandbox)
    report({"ok": True, "name": args.name, "pid": os.getpid(), "moves": moves, "status": status})
    # Once the start's own connections (readiness connects) are closed: collect the cycles
    # the start left (2 KiB a stub), then freeze what remains, which lives as long as the
    # process, so that the collector never walks it again.
    loop.call_later(SETTLE, _settle)
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
    # stdout and stderr both go to supervisor.log (see runtime/launch.py)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    return run(_supervise(args))


# Set to 0 (no, off, false) to run the supervisor on asyncio's own loop though uvloop is there.
UVLOOP_ENV = "SANDBOX_UVLOOP"


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run the supervisor's coroutine on uvloop when it is installed (the `fast` extra),
    unless SANDBOX_UVLOOP is 0; else on asyncio's loop. Stubs answer 7–20 % more requests a
    second on it (bench/RESULTS.md)."""
    if os.environ.get(UVLOOP_ENV, "").strip().lower() not in {"0", "no", "off", "false"}:
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

"""`sandbox restart`'s channel to a running supervisor: a request file in the sandbox's folder,
then SIGUSR1 to the supervisor (pid and start time verified); the answer comes back as a file.

No socket is opened for it: only the user who owns the state folder can write there, and
only a process that may signal the supervisor can wake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import (
    ExitCode,
    NotReadyError,
    SandboxError,
    UsageError,
    error_from_json,
    error_to_json,
)
from sandbox.proc.processes import is_alive, signal_ref
from sandbox.runtime.private import check_private, open_private, private_dir
from sandbox.runtime.state import StateDir

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sandbox.runtime.sandbox import Sandbox

WAKE = signal.SIGUSR1
_FOLDER = "requests"
_POLL = 0.05  # how often the caller looks for the answer file


def _folder(state: StateDir) -> Path:
    path = state.path / _FOLDER
    private_dir(path)
    check_private(path)
    return path


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as stream:
        data = json.loads(stream.read(1 << 20).decode("utf-8"))
    return data if isinstance(data, dict) else None


def request_restart(state: StateDir, services: Sequence[str], *, timeout: float) -> dict[str, Any]:
    """Ask the supervisor of `state` to restart `services` (all command services and stubs
    when empty); wait up to `timeout` seconds for its answer.

    Returns {"services": [{"name", "ok", "detail"}]}. Raises UsageError if the sandbox is
    not running or a name is unknown, NotReadyError (exit 5) when a service was not ready
    again or no answer came in time.
    """
    record = state.read()
    if record is None:
        raise UsageError(
            f'sandbox "{state.name}" is not running.', "`sandbox status` lists what runs."
        )
    known = [s.name for s in record.services]
    unknown = [s for s in services if s not in known]
    if unknown:
        raise UsageError(
            f'sandbox "{state.name}" has no service "{unknown[0]}" (services: {", ".join(known)}).'
        )
    supervisor = record.supervisor
    if record.status != "running":
        raise UsageError(
            f'sandbox "{state.name}" is {record.status}; restart it once it is running.',
            f"`sandbox status {state.name}` shows where it stands.",
        )
    if supervisor is None or not is_alive(supervisor):
        raise UsageError(
            f'sandbox "{state.name}" has no live supervisor to restart anything.',
            f"`sandbox down {state.name}` cleans up; then bring it up again.",
        )
    ident = uuid.uuid4().hex
    folder = _folder(state)
    # By default every service but the jobs: restarting all should not run a migration again.
    chosen = list(services) or [s.name for s in record.services if not s.job]
    _write(folder / f"{ident}.json", {"services": chosen})
    if not signal_ref(supervisor, WAKE):
        raise UsageError(f'sandbox "{state.name}" stopped before it could be asked.')
    answer_path = folder / f"{ident}.done"
    deadline = time.monotonic() + timeout
    while (answer := _read(answer_path)) is None:
        if time.monotonic() > deadline:
            raise NotReadyError(
                f'sandbox "{state.name}" did not answer the restart within {timeout:g} s.',
                f"`sandbox status {state.name}` shows where it stands.",
            )
        time.sleep(_POLL)  # polling a file for the answer, with a deadline
    with contextlib.suppress(OSError):
        answer_path.unlink()
    if isinstance(answer.get("error"), dict):
        raise error_from_json(answer["error"])
    return answer


def serve_restarts(sandbox: Sandbox, state: StateDir) -> Callable[[], None]:
    """Handle restart requests for `sandbox` on SIGUSR1 in the running loop; returns the
    function that stops handling them."""
    loop = asyncio.get_running_loop()
    busy = asyncio.Lock()
    tasks: set[asyncio.Task[None]] = set()

    async def handle() -> None:
        async with busy:  # one request after the other, like the restarts themselves
            folder = _folder(state)
            for path in sorted(folder.glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    request = _read(path)
                    path.unlink()
                    if request is not None:
                        _write(path.with_suffix(".done"), await _answer(sandbox, request))

    def woken() -> None:
        task = loop.create_task(handle())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(WAKE, woken)

    def stop() -> None:
        loop.remove_signal_handler(WAKE)
        for task in tasks:
            task.cancel()

    return stop


async def _answer(sandbox: Sandbox, request: dict[str, Any]) -> dict[str, Any]:
    names = [str(n) for n in request.get("services", [])]
    try:
        results = await sandbox.restart(names)
    except SandboxError as exc:
        return {"error": error_to_json(exc)}
    return {
        "services": [
            {"name": name, "ok": result.ok, "detail": result.detail}
            for name, result in results.items()
        ],
        "code": int(ExitCode.OK if all(r.ok for r in results.values()) else ExitCode.NOT_READY),
    }

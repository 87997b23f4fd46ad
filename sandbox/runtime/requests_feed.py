"""`sandbox requests` as a function: a recorded sandbox's journal entries, then (following)
new ones as they arrive, polled from its control API at a bounded interval."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sandbox.errors import SandboxError, UsageError
from sandbox.runtime.control_client import AttachedSandbox
from sandbox.runtime.state import StateDir, is_locked
from sandbox.services.journal import Entry

POLL_MIN = 0.1  # seconds between polls while requests arrive
POLL_MAX = 1.0  # the longest wait once it is quiet: a new request shows within a second
STOP_WAIT = 10.0  # how long a sandbox whose control API went quiet may take to let go


def requests_feed(
    state_root: Path,
    name: str,
    service: str | None = None,
    *,
    method: str | None = None,
    path: str | None = None,
    follow: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Entry]:
    """Yield the journal entries of sandbox `name` (one service, or all), oldest first; when
    following, keep polling and yield new ones until the sandbox stops.

    Raises UsageError for a sandbox that is not running or a service that is not a stub,
    SandboxError when the control API cannot be reached while the sandbox still runs.
    """
    record = StateDir(state_root, name).read()
    if record is None:
        raise UsageError(
            f'sandbox "{name}" is not running, so it has no journal.',
            "`sandbox status` lists the running sandboxes.",
        )
    client = AttachedSandbox(record)
    since, interval, polled = 0, POLL_MIN, False
    while True:
        try:
            entries = client.requests(service, method=method, path=path, since=since)
        except SandboxError as exc:
            if isinstance(exc, UsageError):
                raise
            # While following, a control API that stops answering is the sandbox stopping:
            # `down` closes it before the supervisor lets go of its lock.
            if polled and _released(state_root, name, sleep):
                return
            if is_locked(state_root, name):
                raise
            raise SandboxError(
                f'sandbox "{name}" is recorded but its supervisor has gone.',
                hint=f"`sandbox down {name}` cleans up what is left.",
            ) from None
        yield from entries
        if not follow:
            return
        if entries:
            since, interval = entries[-1].seq, POLL_MIN
        else:
            interval = min(interval * 2, POLL_MAX)
        polled = True
        sleep(interval)


def _released(state_root: Path, name: str, sleep: Callable[[float], None]) -> bool:
    """Whether sandbox `name`'s supervisor lets go of its lock within STOP_WAIT seconds."""
    deadline = time.monotonic() + STOP_WAIT
    while is_locked(state_root, name):
        if time.monotonic() >= deadline:
            return False
        sleep(POLL_MIN)
    return True

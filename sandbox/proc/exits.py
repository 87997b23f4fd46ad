"""Notice a child's exit the moment it happens, by watching the process, never its pipes."""

from __future__ import annotations

import asyncio
import contextlib
import os

_REAP_POLL = 0.01  # the child watcher sets returncode right after the kernel reports the exit


async def pidfd_exited(pidfd: int, timeout: float | None = None) -> bool:
    """Wait until the process of `pidfd` exits (its pidfd becomes readable), at most
    `timeout` seconds; whether it did. Any process may be watched, not only a child.
    Leaves no reader behind, also when cancelled; the pidfd stays the caller's to close."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        async with asyncio.timeout(timeout):
            await exited
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
    return True


async def wait_exit(process: asyncio.subprocess.Process) -> int:
    """The exit status of `process` (negative: the signal that killed it), once it has exited.

    `Process.wait()` on Python 3.11 returns only when the child's stdout is closed too
    (python/cpython#119710), so a program whose child keeps the pipe (nginx's workers,
    `sh -c 'x & exec y'`) would look alive forever. A pidfd becomes readable when the
    process exits, whatever holds its pipes; asyncio's child watcher still reaps it and
    sets `returncode`, which is polled for briefly. Without pidfds, `returncode` is polled.
    Leaves no reader or descriptor behind, also when cancelled.
    """
    if process.returncode is not None:
        return process.returncode
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):  # no pidfd here, or already reaped
        pidfd = os.pidfd_open(process.pid)
    if pidfd is not None:
        try:
            if process.returncode is None:
                await pidfd_exited(pidfd)
        finally:
            os.close(pidfd)
    while process.returncode is None:
        await asyncio.sleep(_REAP_POLL)  # the reaper's report, a few ms after the exit
    return process.returncode

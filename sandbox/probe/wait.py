"""Many probes at once (bounded), and probing until ready with a deadline and a backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from sandbox.probe.result import ProbeResult, ProbeState, _seconds


async def probe_all(
    coros: Iterable[Awaitable[ProbeResult]], *, limit: int = 64
) -> list[ProbeResult]:
    """Await every probe with at most `limit` in flight; results in input order.

    Raises ValueError for a limit below 1, or what a probe raised (the others are then cancelled,
    and those never started are closed, so nothing is left pending).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}.")
    gate = asyncio.Semaphore(limit)

    async def run(probe: Awaitable[ProbeResult]) -> ProbeResult:
        started = False
        try:
            async with gate:
                started = True
                return await probe
        finally:
            if not started and asyncio.iscoroutine(probe):
                probe.close()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run(probe)) for probe in coros]
    except ExceptionGroup as failed:  # a probe raised: a bug, so let the caller see it plainly
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _stand_in(last: ProbeResult | None, state: ProbeState, detail: str) -> ProbeResult:
    """A result for a probe that gave none, naming the target of the one before if any."""
    if last is None:
        return ProbeResult("", None, None, state, None, detail=detail)
    return ProbeResult(last.target, last.address, last.port, state, None, detail=detail)


async def wait_ready(
    probe: Callable[[], Awaitable[ProbeResult]],
    *,
    timeout: float,
    interval: float = 0.005,
    max_interval: float = 0.1,
    give_up: Callable[[], str | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Probe until a result is ok or `timeout` passes, backing off from `interval` to
    `max_interval`; returns the last result. Never raises.

    Past the deadline the last result keeps its state and its detail reads "not ready within
    N s: last probe: ...". `give_up()` is asked after each failed probe; a sentence from it
    ("the process exited with code 1") stops at once and leads the detail. Each probe is cut
    short at the deadline (state TIMEOUT; its detail then adds what the probe before found,
    such as an HTTP 503). A probe (or give_up) that raises ends the wait, the
    first with state ERROR.
    """
    deadline = clock() + timeout
    pause = interval
    last: ProbeResult | None = None
    while True:
        remaining = deadline - clock()
        try:
            async with asyncio.timeout(remaining if remaining > 0 else None):
                result = await probe()
        except TimeoutError:
            cut = "the probe did not finish in time"
            if last is not None:  # what the last whole probe found says more than the cut
                cut += f"; the one before: {last.detail}"
            result = _stand_in(last, ProbeState.TIMEOUT, cut)
        except Exception as exc:
            return _stand_in(last, ProbeState.ERROR, f"the probe failed: {_text(exc)}")
        if result.ok:
            return result
        last = result
        try:
            reason = give_up() if give_up is not None else None
        except Exception as exc:
            reason = f"give_up() failed: {_text(exc)}"
        if reason:
            return replace(result, detail=f"{reason}; last probe: {result.detail}")
        remaining = deadline - clock()
        if remaining <= 0:
            late = f"not ready within {_seconds(timeout)} s: last probe: {result.detail}"
            return replace(result, detail=late)
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, max_interval)

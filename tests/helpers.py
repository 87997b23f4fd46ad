"""Helpers every test shares: is an address listening, is a process gone, poll until."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sandbox.net.table import read_table


def listening(address: str) -> list[int]:
    """The TCP ports something listens on at exactly `address`, from the socket table."""
    want = ipaddress.ip_address(address)
    return [x.port for x in read_table(protocols=("tcp",)) if x.address == want]


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a reaper that never reaps is no survivor: the
    container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(
    check: Callable[[], object],
    what: str = "the condition",
    timeout: float = 15.0,
    shown: Callable[[], str] = lambda: "",
) -> float:
    """Poll `check` until it is truthy (never a sleep as a signal); the seconds it took.
    Fails naming `what`, and what `shown` says then, at the deadline."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}{shown()}"
        time.sleep(0.01)
    return time.monotonic() - t0


async def until(
    check: Callable[[], object],
    what: str = "the condition",
    timeout: float = 15.0,
    shown: Callable[[], str] = lambda: "",
) -> float:
    """`wait_until` for a test on the event loop: the loop keeps running between polls."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}{shown()}"
        await asyncio.sleep(0.005)
    return time.monotonic() - t0


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@contextlib.contextmanager
def held(address: str, *, listen: bool = True, backlog: int = 128) -> Iterator[int]:
    """A socket bound to address:0 (listening or not) for the block; yields its port.
    Skips the test where `address` cannot be bound (::1 without IPv6)."""
    import pytest

    sock = socket.socket(_family(address), socket.SOCK_STREAM)
    try:
        try:
            sock.bind((address, 0))
        except OSError as exc:
            pytest.skip(f"cannot bind {address} here: {exc}")
        if listen:
            sock.listen(backlog)
        yield sock.getsockname()[1]
    finally:
        sock.close()

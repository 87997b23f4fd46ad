"""A lost bind race under a moving strategy plans again; under `fail` it stays a conflict."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from sandbox.errors import BindError
from sandbox.net.sockets import bind_all
from sandbox.profile.loader import load_profile_data
from sandbox.profile.models import Profile
from sandbox.runtime.sandbox import Sandbox


def _free_port(address: str) -> int:
    """A port free on `address` right now (the kernel's pick; closed again at once)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _profile(address: str, port: int) -> Profile:
    return load_profile_data(
        {
            "name": "race",
            "pool": str(ipaddress.ip_network(f"{address}/24", strict=False)),
            "services": {"api": {"kind": "http", "address": address, "port": port}},
        }
    )


class Thief:
    """A bind seam that, on its first call, takes the first pair the plan chose (a listener
    of ours, as a second worker would) just before the sandbox binds."""

    def __init__(self) -> None:
        self.stolen: list[socket.socket] = []
        self.calls = 0

    def __call__(self, requests: Sequence[tuple[Any, int, str]]) -> list[socket.socket]:
        self.calls += 1
        if self.calls == 1:
            address, port, _ = requests[0]
            sock = socket.socket()
            sock.bind((str(address), port))
            sock.listen()
            self.stolen.append(sock)
        return bind_all(requests)

    def close(self) -> None:
        for sock in self.stolen:
            sock.close()


@pytest.mark.parametrize("strategy", ["next-port", "next-address"])
async def test_a_lost_race_plans_again_around_the_winner(
    spare_loopback: Any, strategy: str
) -> None:
    address = str(spare_loopback(1)[0])
    port = _free_port(address)
    thief = Thief()
    box = Sandbox(_profile(address, port), on_conflict=strategy, bind=thief)  # type: ignore[arg-type]
    try:
        await box.start()
        assert thief.calls == 2
        assert (box.address("api"), box.port("api")) != (address, port)
        assert box.plan is not None
        (move,) = box.plan.moves
        assert move.before == (move.before[0], port)
        assert str(move.before[0]) == address
    finally:
        await box.stop()
        thief.close()


async def test_under_fail_a_lost_race_is_a_conflict(spare_loopback: Any) -> None:
    address = str(spare_loopback(1)[0])
    port = _free_port(address)
    thief = Thief()
    box = Sandbox(_profile(address, port), on_conflict="fail", bind=thief)
    try:
        with pytest.raises(BindError) as caught:
            await box.start()
        assert caught.value.errno == errno.EADDRINUSE
        assert thief.calls == 1
    finally:
        await box.stop()
        thief.close()


def _race_once(address: str, port: int) -> tuple[list[tuple[str, int]], list[BaseException]]:
    """Two threads (as two pytest-xdist workers) plan the same free pair at the same moment."""
    barrier = threading.Barrier(2)
    bound: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    async def run() -> None:
        box = Sandbox(_profile(address, port), on_conflict="next-port")
        barrier.wait(timeout=10)  # both plan while the pair is free
        try:
            await box.start()
            bound.append((box.address("api"), box.port("api")))
            barrier.wait(timeout=10)  # both hold their sockets at the same time
        finally:
            await box.stop()

    def worker() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return bound, errors


def test_two_workers_starting_one_profile_both_come_up_ten_times(spare_loopback: Any) -> None:
    for _ in range(10):
        address = str(spare_loopback(1)[0])
        bound, errors = _race_once(address, _free_port(address))
        assert not errors, errors
        assert len(set(bound)) == 2, bound

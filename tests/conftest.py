"""Shared fixtures and hooks for the whole suite."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable

import pytest


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip `@pytest.mark.netns` tests, with the reason, where namespaces are unavailable."""
    if item.get_closest_marker("netns") is not None:
        from tests.netns import SKIP_REASON, netns_available

        if not netns_available():
            pytest.skip(SKIP_REASON)


@pytest.fixture
def spare_loopback() -> Callable[[int], list[ipaddress.IPv4Address]]:
    """A factory of n distinct 127.x.y.z addresses, random within 127.64.0.0/10, so tests
    running side by side rarely pick the same ones (any 127/8 address binds on Linux).
    """

    def pick(count: int) -> list[ipaddress.IPv4Address]:
        chosen: set[ipaddress.IPv4Address] = set()
        while len(chosen) < count:
            addr = ipaddress.IPv4Address((127 << 24) | (64 << 16) | random.getrandbits(22))
            if int(addr) & 0xFF not in (0, 0xFF):
                chosen.add(addr)
        return sorted(chosen)

    return pick

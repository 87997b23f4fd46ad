"""connect_all: many TCP probes without an event loop, each answer the one probe_tcp gives."""

from __future__ import annotations

import dataclasses
import re
import socket
import time

import pytest

from sandbox.probe import ProbeResult, ProbeState, probe_tcp
from sandbox.probe.connect import connect_all
from tests.helpers import held

V4 = "127.0.0.63"


def _timeless(result: ProbeResult) -> ProbeResult:
    """The result without its latency, which differs from one connect to the next."""
    detail = re.sub(r"in \d+\.\d+ ms", "in T ms", result.detail)
    return dataclasses.replace(result, latency_ms=None, detail=detail)


@pytest.mark.parametrize("address", [V4, "::1"])
async def test_open_and_refused_read_as_probe_tcp_reads_them(address: str) -> None:
    with held(address) as open_port, held(address, listen=False) as closed_port:
        fast = connect_all([(address, open_port, "web"), (address, closed_port, "db")])
        slow = [
            await probe_tcp(address, open_port, target="web"),
            await probe_tcp(address, closed_port, target="db"),
        ]
    assert [r.state for r in fast] == [ProbeState.OPEN, ProbeState.REFUSED]
    assert [_timeless(r) for r in fast] == [_timeless(r) for r in slow]
    assert fast[0].latency_ms is not None
    assert fast[0].latency_ms > 0


def test_many_at_a_bounded_concurrency_keep_their_order() -> None:
    with held(V4) as open_port, held(V4, listen=False) as closed_port:
        ports = [open_port if i % 3 else closed_port for i in range(40)]
        results = connect_all([(V4, p, f"t{i}") for i, p in enumerate(ports)], limit=3)
    assert [r.target for r in results] == [f"t{i}" for i in range(40)]
    expected = [ProbeState.OPEN if i % 3 else ProbeState.REFUSED for i in range(40)]
    assert [r.state for r in results] == expected


def test_a_full_backlog_times_out_within_the_deadline() -> None:
    # One connection fills a backlog of 0; the kernel drops the SYNs of the next ones.
    with held(V4, backlog=0) as port, socket.create_connection((V4, port), timeout=2.0):
        started = time.monotonic()
        results = connect_all([(V4, port, "a"), (V4, port, "b")], timeout=0.3)
        took = time.monotonic() - started
    if any(r.state is ProbeState.OPEN for r in results):
        pytest.skip("this kernel accepted connections beyond a full backlog")
    assert [r.state for r in results] == [ProbeState.TIMEOUT, ProbeState.TIMEOUT]
    assert results[0].detail.startswith(f"no answer within 0.3 s: {V4}:{port} did not accept")
    assert 0.25 < took < 2.0


def test_nothing_to_probe_is_no_result() -> None:
    assert connect_all([]) == []


@pytest.mark.parametrize(
    ("endpoint", "timeout", "limit"),
    [
        (("localhost", 80, "x"), 1.0, 64),
        (("10.0.0.1", 80, "x"), 1.0, 64),
        (("127.255.255.255", 9, "x"), 1.0, 64),
        (("127.0.0.1", 0, "x"), 1.0, 64),
        (("127.0.0.1", 80, "x"), 0.0, 64),
        (("127.0.0.1", 80, "x"), 1.0, 0),
    ],
)
def test_bad_arguments_are_refused_before_any_connect(
    endpoint: tuple[str, int, str], timeout: float, limit: int
) -> None:
    with pytest.raises(ValueError, match=r"\."):
        connect_all([endpoint], timeout=timeout, limit=limit)

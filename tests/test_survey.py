"""`sandbox probe` of many targets: refusals say who listens nearby, and stay short."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket

import pytest

from sandbox.net.listeners import Listener, Owner
from sandbox.probe import ProbeResult, ProbeState
from sandbox.probe.survey import explain_refused, neighbours, probe_literals, probe_targets
from sandbox.probe.targets import parse_target


def _refused(address: str, port: int) -> ProbeResult:
    return ProbeResult(f"{address}:{port}", address, port, ProbeState.REFUSED, None, detail="x")


def test_a_thousand_refusals_quote_a_long_command_line_once() -> None:
    owner = Owner(4127, "java", "java " + " ".join(f"-Dp{i}=v{i}" for i in range(3000)), "me")
    table = [
        Listener(ipaddress.ip_address("127.0.0.63"), port, "tcp", owner)
        for port in range(20000, 21000)
    ]
    quoted: set[int] = set()
    results = [
        explain_refused(_refused("127.0.0.9", port), table, quoted) for port in range(20000, 21000)
    ]
    details = [r.detail for r in results]
    assert len(details) == 1000
    assert sum('"java -Dp0=v0' in d for d in details) == 1  # the command line, once
    assert all("pid 4127, as above" in d for d in details[1:])
    assert sum(len(d) for d in details) < 150_000  # was about 9 MB for such a run


def test_a_refusal_without_neighbours_is_left_as_it_was() -> None:
    result = _refused("127.0.0.9", 20000)
    assert explain_refused(result, [], set()) == result


def test_a_refusal_names_the_first_three_neighbours_in_table_order() -> None:
    owner = Owner(4127, "web", "web", "me")
    table = [
        Listener(ipaddress.ip_address(f"127.0.0.{i}"), 8080, "tcp", owner) for i in range(10, 20)
    ]
    detail = explain_refused(_refused("127.0.0.12", 8080), table, set()).detail
    named = re.findall(r"127\.0\.0\.\d+:8080", detail)
    assert named == ["127.0.0.12:8080", "127.0.0.10:8080", "127.0.0.11:8080", "127.0.0.13:8080"]
    assert [str(x.address) for x in neighbours("127.0.0.12", 8080, table)][:4] == [
        "127.0.0.10", "127.0.0.11", "127.0.0.13", "127.0.0.14",
    ]  # fmt: skip


def _timeless(result: ProbeResult) -> ProbeResult:
    detail = re.sub(r"in \d+\.\d+ ms", "in T ms", result.detail)
    return dataclasses.replace(result, latency_ms=None, detail=detail)


async def test_literal_targets_without_a_loop_read_as_probe_targets_reads_them() -> None:
    with socket.socket() as listener, socket.socket() as bound:
        listener.bind(("127.0.0.64", 0))
        listener.listen()
        port = listener.getsockname()[1]
        bound.bind(("127.0.0.65", 0))  # refuses: bound, never listening
        texts = [f"127.0.0.64:{port}", f"127.0.0.66:{port}", f"127.0.0.65:{bound.getsockname()[1]}"]
        slow = await probe_targets(texts, timeout=2.0)
        fast = probe_literals([parse_target(t) for t in texts], timeout=2.0)
    assert [r.state for r in fast] == [ProbeState.OPEN, ProbeState.REFUSED, ProbeState.REFUSED]
    assert f"but 127.0.0.64:{port}" in fast[1].detail  # the neighbour hint
    assert [_timeless(r) for r in fast] == [_timeless(r) for r in slow]


@pytest.mark.parametrize("text", ["http://127.0.0.1:80/", "localhost:80", "web"])
def test_probe_literals_takes_literal_host_port_targets_only(text: str) -> None:
    with pytest.raises(ValueError, match="not a literal HOST:PORT"):
        probe_literals([parse_target(text)], timeout=1.0)

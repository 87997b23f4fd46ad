"""`sandbox probe` of many targets: refusals say who listens nearby, and stay short."""

from __future__ import annotations

import ipaddress

from sandbox.net.listeners import Listener, Owner
from sandbox.probe import ProbeResult, ProbeState
from sandbox.probe.survey import explain_refused


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

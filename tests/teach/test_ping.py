"""Tests for sandbox.teach.ping: real ICMP echo on loopback, the checksum, and what is refused."""

from __future__ import annotations

import io
import json
import struct

import pytest

from sandbox.errors import UsageError
from sandbox.output import Printer
from sandbox.output.ping import render, render_progress
from sandbox.teach.ping import (
    PingReport,
    PingUnavailable,
    echo_request,
    icmp_checksum,
    ping,
    ping_group_allows,
)
from tests.netns import netns_json


def ping_or_skip(host: str, **kwargs: object) -> PingReport:
    try:
        return ping(host, count=2, **kwargs)  # type: ignore[arg-type]
    except PingUnavailable as exc:
        pytest.skip(f"ICMP echo is not possible here: {exc}")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]"])
def test_ping_loopback_gets_every_reply(host: str) -> None:
    seen: list[int] = []
    report = ping_or_skip(host, interval=0.01, on_reply=lambda p: seen.append(len(p.replies)))
    assert report.address == host.strip("[]")
    assert report.method in ("dgram", "raw")
    assert (report.sent, report.received, report.loss) == (2, 2, 0.0)
    assert [r.seq for r in report.replies] == [1, 2]
    assert len(report.rtts_ms) == 2
    assert all(0 < t < 1000 for t in report.rtts_ms)
    assert report.min_ms is not None
    assert report.max_ms is not None
    assert report.avg_ms is not None
    assert report.min_ms <= report.avg_ms <= report.max_ms
    assert seen == [1, 2]
    data = json.loads(json.dumps(report.to_json()))
    assert data["received"] == 2
    assert data["method"] == report.method


def test_ping_localhost_pings_what_it_resolves_to() -> None:
    report = ping_or_skip("localhost", interval=0.01)
    assert report.host == "localhost"
    assert report.address in ("127.0.0.1", "::1")
    assert report.received == 2


def test_render_prints_replies_and_statistics() -> None:
    report = ping_or_skip("127.0.0.1", interval=0.01)
    out, err = io.StringIO(), io.StringIO()
    printer = Printer(out=out, err=err, colour=False)
    render(report, printer)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("PING 127.0.0.1: 56 data bytes")
    assert lines[1].startswith("64 bytes from 127.0.0.1: icmp_seq=1 time=")
    assert "2 sent, 2 received, 0% loss" in lines
    assert lines[-1].startswith("round-trip min/avg/max = ")
    assert "not that a port listens" in err.getvalue()
    streamed = io.StringIO()
    progress = Printer(out=streamed, err=io.StringIO(), colour=False)
    ping(
        "127.0.0.1",
        count=2,
        interval=0.01,
        method=report.method,
        on_reply=lambda p: render_progress(p, progress),
    )
    assert streamed.getvalue().splitlines()[0].startswith("PING 127.0.0.1")
    assert len(streamed.getvalue().splitlines()) == 3


def test_checksum_matches_rfc_1071() -> None:
    # RFC 1071 section 3's example words sum to 0xddf2; the checksum is its complement.
    assert icmp_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert icmp_checksum(b"\x01") == icmp_checksum(b"\x01\x00")  # an odd byte is padded
    packet = echo_request(0x1234, 7, b"sandbox!!")
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, ident, seq, packet[8:]) == (8, 0, 0x1234, 7, b"sandbox!!")
    assert icmp_checksum(packet) == 0  # a packet carrying its checksum sums to zero
    assert echo_request(1, 1, b"", version=6)[0] == 128


def test_ping_group_range() -> None:
    assert not ping_group_allows("1\t0", [0, 1000])  # the kernel's default: nobody
    assert ping_group_allows("0 2147483647", [1000])
    assert ping_group_allows("100 200", [5, 150])
    assert not ping_group_allows("100 200", [5])
    assert not ping_group_allows("garbage", [0])


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("10.0.0.1", "not a loopback address"),
        ("0.0.0.0", "wildcard address"),
        ("127.255.255.255", "broadcast"),
        ("example.com", "looks no other name up"),
        ("web.sandbox.test", "looks no other name up"),
    ],
)
def test_non_loopback_hosts_are_refused(host: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        ping(host, count=1)


@pytest.mark.parametrize(
    "kwargs", [{"count": 0}, {"count": 101}, {"timeout": 0}, {"interval": 6}, {"timeout": 60}]
)
def test_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        ping("127.0.0.1", **kwargs)  # type: ignore[arg-type]


_IN_CHILD = """
import json
from sandbox.teach.ping import PingUnavailable, ping
try:
    reports = [ping(h, count=2, interval=0.01).to_json() for h in ("127.0.0.1", "::1")]
    print(json.dumps({"reports": reports}))
except PingUnavailable as exc:
    print(json.dumps({"message": exc.message, "hint": exc.hint}))
"""


@pytest.mark.netns
def test_an_admitted_group_pings_without_privilege() -> None:
    setup = "ip link set lo up && echo '0 0' > /proc/sys/net/ipv4/ping_group_range"
    seen = netns_json(_IN_CHILD, setup=setup)
    assert [(r["method"], r["received"]) for r in seen["reports"]] == [("dgram", 2)] * 2


@pytest.mark.netns
def test_without_group_or_cap_net_raw_it_says_what_to_change() -> None:
    seen = netns_json(_IN_CHILD, prefix=["setpriv", "--bounding-set=-net_raw"])
    assert "reports" not in seen, "pinged without CAP_NET_RAW nor an admitted group"
    assert "net.ipv4.ping_group_range is `1 0`" in seen["message"]
    assert "raw ICMP socket failed: Operation not permitted" in seen["message"]
    assert 'sysctl -w net.ipv4.ping_group_range="0 0"' in seen["hint"]

"""Tests for sandbox.net.addresses: loopback checks, the pool, allocation, host:port text."""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import os
import subprocess
import sys

import pytest

from sandbox.net.addresses import (
    IPV6_LOOPBACK,
    Endpoint,
    IPAddress,
    allocate,
    default_pool,
    format_hostport,
    format_url,
    is_loopback,
    parse_hostport,
    parse_loopback,
    pool_addresses,
)

V4 = ipaddress.IPv4Address
NET = ipaddress.IPv4Network


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.0", True),
        ("127.200.3.4", True),
        ("::1", True),
        ("::ffff:127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("::2", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_is_loopback(text: str, expected: bool) -> None:
    assert is_loopback(ipaddress.ip_address(text)) is expected


@pytest.mark.parametrize("text", ["127.0.0.2", "127.0.0.1", "127.9.8.7", "::1", " ::1 ", "[::1]"])
def test_parse_loopback_accepts(text: str) -> None:
    addr = parse_loopback(text)
    assert addr == ipaddress.ip_address(text.strip().strip("[]"))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0.0.0.0", ["wildcard", "every interface", "other machines could reach it"]),
        ("::", ["wildcard", "every interface", "nothing the sandbox opens"]),
        ("10.0.0.1", ["10.0.0.1 is not a loopback address", "127.0.0.0/8", "::1"]),
        ("::2", ["is not a loopback address"]),
        ("127.255.255.255", ["broadcast address of 127.0.0.0/8", "ENETUNREACH"]),
        ("::ffff:127.0.0.2", ["IPv4-mapped", "write it as 127.0.0.2"]),
        ("localhost", ["not an IP address", "not resolved"]),
    ],
)
def test_parse_loopback_refuses_with_a_sentence(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError, match=r"\.$") as caught:
        parse_loopback(text, where="services.api.address")
    message = str(caught.value)
    assert message.startswith("services.api.address: ")
    for word in words:
        assert word in message


def test_default_pool_is_stable_and_inside_127_8() -> None:
    pool = default_pool("web-db-api")
    assert pool == default_pool("web-db-api")
    assert pool.prefixlen == 16
    assert pool.subnet_of(NET("127.0.0.0/8"))
    # Recomputed independently: the choice depends on the name alone.
    second = 16 + int.from_bytes(hashlib.sha256(b"web-db-api").digest()[:4], "big") % 239
    assert pool == NET(f"127.{second}.0.0/16")


def test_default_pool_is_the_same_in_another_interpreter() -> None:
    code = "from sandbox.net.addresses import default_pool; print(default_pool('web-db-api'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash must not matter
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == str(default_pool("web-db-api"))


def test_default_pools_avoid_127_0_and_127_255() -> None:
    seconds = {default_pool(f"profile-{i}").network_address.packed[1] for i in range(3000)}
    assert min(seconds) >= 16
    assert max(seconds) <= 254
    assert len(seconds) > 200  # spread over the range, not a constant


def test_pool_addresses_skip_the_special_ones() -> None:
    addresses = list(pool_addresses(NET("127.0.0.0/16")))
    assert addresses[0] == V4("127.0.0.2")
    assert V4("127.0.0.1") not in addresses
    assert V4("127.0.0.0") not in addresses
    assert all(a.packed[3] not in (0, 255) for a in addresses)
    assert addresses == sorted(addresses)
    assert len(addresses) == 256 * 254 - 1  # .0 and .255 of each /24, and 127.0.0.1


def test_pool_never_yields_127_255_255_255() -> None:
    tail = list(pool_addresses(NET("127.255.255.0/24")))
    assert V4("127.255.255.255") not in tail
    assert tail[-1] == V4("127.255.255.254")
    assert list(pool_addresses(NET("127.255.255.255/32"))) == []


def test_a_whole_8_pool_is_lazy() -> None:
    first = list(itertools.islice(pool_addresses(NET("127.0.0.0/8")), 3))
    assert first == [V4("127.0.0.2"), V4("127.0.0.3"), V4("127.0.0.4")]


@pytest.mark.parametrize("pool", ["10.0.0.0/16", "126.0.0.0/7", "0.0.0.0/0"])
def test_pool_outside_127_8_is_refused(pool: str) -> None:
    with pytest.raises(ValueError, match=r"not inside 127\.0\.0\.0/8"):
        next(pool_addresses(NET(pool)))


def test_allocate_is_deterministic_in_order_and_skips_taken() -> None:
    pool = NET("127.42.0.0/16")
    taken: list[IPAddress] = [V4("127.42.0.2"), V4("127.42.0.4"), ipaddress.IPv6Address("::1")]
    first = allocate(["web", "api", "db"], pool, taken)
    assert first == allocate(["web", "api", "db"], pool, taken)
    assert list(first) == ["web", "api", "db"]
    assert first == {"web": V4("127.42.0.1"), "api": V4("127.42.0.3"), "db": V4("127.42.0.5")}


def test_allocate_gives_distinct_addresses_across_octet_boundaries() -> None:
    names = [f"s{i}" for i in range(600)]
    result = allocate(names, NET("127.42.0.0/16"))
    assert len(set(result.values())) == 600
    assert all(a.packed[3] not in (0, 255) for a in result.values())


def test_allocate_refuses_an_exhausted_pool() -> None:
    pool = NET("127.42.0.0/29")  # .1 .. .7 usable: seven addresses
    assert len(allocate([f"s{i}" for i in range(7)], pool)) == 7
    with pytest.raises(ValueError, match="has only 6 free addresses but 7 services"):
        allocate([f"s{i}" for i in range(7)], pool, taken=[V4("127.42.0.3")])


def test_allocate_refuses_a_repeated_name() -> None:
    with pytest.raises(ValueError, match="'web' appears twice"):
        allocate(["web", "web"], NET("127.42.0.0/16"))


@pytest.mark.parametrize(
    ("addr", "port", "expected"),
    [
        (V4("127.0.0.2"), 8080, "127.0.0.2:8080"),
        (IPV6_LOOPBACK, 8080, "[::1]:8080"),
        ("::1", 9000, "[::1]:9000"),
        ("[::1]", 9000, "[::1]:9000"),
        ("localhost", 5432, "localhost:5432"),
    ],
)
def test_format_hostport(addr: ipaddress.IPv4Address | str, port: int, expected: str) -> None:
    assert format_hostport(addr, port) == expected


def test_format_url_always_brackets_ipv6() -> None:
    assert format_url(IPV6_LOOPBACK, 8080, path="/health") == "http://[::1]:8080/health"
    assert format_url("::1", 8080, "https", "health") == "https://[::1]:8080/health"
    assert format_url(V4("127.0.0.9"), 80) == "http://127.0.0.9:80"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.5:8080", ("127.0.0.5", 8080)),
        ("[::1]:9000", ("::1", 9000)),
        ("[0:0::1]:9000", ("::1", 9000)),
        ("localhost:5432", ("localhost", 5432)),
        (" 127.0.0.5:1 ", ("127.0.0.5", 1)),
        ("127.0.0.5:65535", ("127.0.0.5", 65535)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


def test_parse_hostport_unbracketed_ipv6_says_how_to_write_it() -> None:
    with pytest.raises(ValueError, match=r"must be written in brackets, like \[::1\]:8080\."):
        parse_hostport("::1:8080")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("127.0.0.5", "has no port"),
        ("127.0.0.5:", "invalid port ''"),
        ("127.0.0.5:0", "a number from 1 to 65535"),
        ("127.0.0.5:65536", "a number from 1 to 65535"),
        ("127.0.0.5:http", "invalid port 'http'"),
        ("127.0.0.5:-1", "invalid port '-1'"),
        (":8080", "has no host"),
        ("[::1]", "needs a port"),
        ("[127.0.0.1]:80", "only an IPv6 address goes inside brackets"),
        ("bad host:80", "neither an IP address nor a host name"),
        ("::1", "brackets"),
    ],
)
def test_parse_hostport_refuses(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=r"\.$") as caught:
        parse_hostport(text)
    assert words in str(caught.value)


def test_endpoint_round_trip() -> None:
    endpoint = Endpoint.parse("[::1]:9000")
    assert endpoint == Endpoint("::1", 9000)
    assert str(endpoint) == "[::1]:9000"
    with pytest.raises(AttributeError):
        endpoint.port = 1  # type: ignore[misc]

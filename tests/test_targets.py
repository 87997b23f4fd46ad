"""Tests for parsing probe targets and expanding them to loopback addresses."""

from __future__ import annotations

import socket

import pytest

from sandbox.errors import ResolveError, UsageError
from sandbox.probe.targets import (
    Target,
    TargetError,
    check_loopback,
    expand,
    is_literal,
    keep_loopback,
    parse_target,
)

LOOPBACK_ONLY = (
    "sandbox probes only this machine's loopback (127.0.0.0/8 and ::1); "
    "it is not a network scanner."
)


@pytest.mark.parametrize(
    ("text", "kind", "host", "port", "path"),
    [
        ("127.0.0.5:8080", "hostport", "127.0.0.5", 8080, "/"),
        ("[::1]:9000", "hostport", "::1", 9000, "/"),
        ("[0:0::1]:9000", "hostport", "::1", 9000, "/"),
        ("localhost:5432", "hostport", "localhost", 5432, "/"),
        (" 127.0.0.5:1 ", "hostport", "127.0.0.5", 1, "/"),
        ("127.0.0.5:65535", "hostport", "127.0.0.5", 65535, "/"),
        ("http://127.0.0.9:8000/health", "url", "127.0.0.9", 8000, "/health"),
        ("http://[::1]:8000/", "url", "::1", 8000, "/"),
        ("http://localhost:8080/x", "url", "localhost", 8080, "/x"),
        ("http://127.0.0.9/health", "url", "127.0.0.9", 80, "/health"),
        ("http://[::1]", "url", "::1", 80, "/"),
        ("HTTP://127.0.0.9:8000?q=1#frag", "url", "127.0.0.9", 8000, "/?q=1"),
        ("http://127.0.0.9:8000/caf\u00e9", "url", "127.0.0.9", 8000, "/caf%C3%A9"),
    ],
)
def test_accepted_forms(text: str, kind: str, host: str, port: int, path: str) -> None:
    target = parse_target(text)
    assert (target.text, target.kind, target.host, target.port, target.path) == (
        text,
        kind,
        host,
        port,
        path,
    )
    assert target.scheme == ("http" if kind == "url" else None)


@pytest.mark.parametrize("text", ["web-db-api", "my_profile", "profiles/web.yaml"])
def test_a_bare_word_is_a_name(text: str) -> None:
    assert parse_target(text) == Target(text, "name", None, None)


def test_hostport_brackets_ipv6() -> None:
    assert parse_target("http://[::1]:8000/").hostport == "[::1]:8000"
    assert parse_target("localhost:5432").hostport == "localhost:5432"
    assert parse_target("web-db-api").hostport is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::1:8080", "::1:8080: an IPv6 address needs brackets before its port; write [::1]:8080."),
        ("::1", "write [::1]:PORT"),
        ("[::1]", "[::1] has no port: write [::1]:PORT."),
        ("127.0.0.5", "127.0.0.5 has no port: write 127.0.0.5:PORT."),
        ("127.0.0.5:", "has no port"),
        ("127.0.0.5:0", "127.0.0.5:0: the port 0 is outside 1..65535."),
        ("127.0.0.5:65536", "the port 65536 is outside 1..65535."),
        ("127.0.0.5:http", "the port 'http' is not a number."),
        ("ftp://127.0.0.1/", "only http:// and https:// URLs can be probed, not ftp://."),
        ("http://user@127.0.0.1/", "credentials in the URL are not supported."),
        ("http:///health", "has no host."),
        ("10.0.0.1:80", "10.0.0.1 is not a loopback address"),
        ("http://192.168.1.1/", "192.168.1.1 is not a loopback address"),
        ("[2001:db8::1]:80", "2001:db8::1 is not a loopback address"),
        ("0.0.0.0:80", "0.0.0.0 is a wildcard address"),
        ("[::]:80", ":: is a wildcard address"),
        ("[::ffff:127.0.0.1]:80", "is an IPv4-mapped IPv6 address; write it as 127.0.0.1"),
        ("127.255.255.255:80", "fails with ENETUNREACH"),
        ("[127.0.0.1]:80", "brackets are only for IPv6 addresses"),
        ("[::1:80", "has no matching ']'"),
        ("[::1]80", "expected ':PORT' after ']'"),
        ("127.1:80", "127.1 is not an IPv4 address: write all four parts."),
        ("bad..name:80", "'bad..name' is not a valid host name or address."),
        (":8080", ":8080 has no host"),
        ("", "the probe target is empty."),
        ("127.0.0.1 :80", "contains spaces"),
    ],
)
def test_refused_forms_say_why(text: str, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(text)
    assert message in caught.value.message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, UsageError)
    assert caught.value.hint


def test_check_loopback_uses_the_documented_sentence() -> None:
    with pytest.raises(TargetError, match="not a loopback address") as caught:
        check_loopback("10.0.0.1")
    assert caught.value.hint is not None
    assert "not a network scanner" in caught.value.hint


@pytest.mark.parametrize("host", ["127.0.0.1", "127.255.255.254", "::1", "localhost", "web"])
def test_check_loopback_passes_loopback_and_names(host: str) -> None:
    check_loopback(host)


@pytest.mark.parametrize(
    ("host", "literal"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", False), ("localhost", False), ("::1%lo", False)],
)
def test_is_literal(host: str, literal: bool) -> None:
    assert is_literal(host) is literal


async def test_expand_a_literal() -> None:
    assert await expand(parse_target("[::1]:9000")) == [("::1", 9000)]
    assert await expand(parse_target("http://127.0.0.9/x")) == [("127.0.0.9", 80)]


async def test_expand_refuses_a_non_loopback_literal_built_by_hand() -> None:
    with pytest.raises(TargetError, match="not a loopback address"):
        await expand(Target("10.0.0.1:80", "hostport", "10.0.0.1", 80))


async def test_expand_localhost_keeps_loopback_in_the_system_order() -> None:
    infos = socket.getaddrinfo("localhost", 5432, type=socket.SOCK_STREAM)
    system = list(dict.fromkeys(str(info[4][0]) for info in infos))
    pairs = await expand(parse_target("localhost:5432"))
    assert pairs == [(a, 5432) for a in system if a == "::1" or a.startswith("127.")]
    assert pairs


async def test_expand_a_name_target_is_an_error() -> None:
    with pytest.raises(TargetError, match="nothing to resolve"):
        await expand(parse_target("web-db-api"))


@pytest.mark.parametrize("host", ["bad..name", "web", "db.example.com"])
async def test_expand_refuses_a_name_other_than_localhost(host: str) -> None:
    # `probe web:80` once sent a DNS query for "web"; now no name but localhost is looked up.
    with pytest.raises(ResolveError, match="looks up no name but localhost"):
        await expand(Target(f"{host}:80", "hostport", host, 80))


def test_keep_loopback_drops_the_rest_in_order() -> None:
    addresses = ["10.1.2.3", "::1", "192.168.0.7", "127.0.1.1"]
    assert keep_loopback("db.example", addresses) == ["::1", "127.0.1.1"]


def test_keep_loopback_names_what_a_name_resolved_to() -> None:
    with pytest.raises(TargetError) as caught:
        keep_loopback("db.example", ["10.1.2.3", "2001:db8::7"])
    assert caught.value.message == (
        f"db.example resolves to 10.1.2.3, 2001:db8::7, none of them loopback: {LOOPBACK_ONLY}"
    )


def test_https_urls_parse_with_port_443_by_default() -> None:
    target = parse_target("https://127.0.0.1/health")
    assert (target.kind, target.port, target.path, target.scheme) == (
        "url",
        443,
        "/health",
        "https",
    )
    assert parse_target("https://127.0.0.1:8443/").port == 8443

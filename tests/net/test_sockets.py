"""Tests for sandbox.net.sockets: real binds on loopback, and each failure's diagnosis."""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
from collections.abc import Callable, Iterator

import pytest

from sandbox.errors import BindError
from sandbox.net.sockets import (
    bind_all,
    bind_listener,
    bound_address,
    describe_errno,
    diagnose_bind_error,
    unprivileged_port_start,
)
from tests.netns import netns_json

Spare = Callable[[int], list[ipaddress.IPv4Address]]
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback_works(), reason="::1 is not bindable here")


@pytest.fixture
def held(spare_loopback: Spare) -> Iterator[socket.socket]:
    """A listener on a spare 127.x address, port 0, closed after the test."""
    sock = bind_listener(spare_loopback(1)[0], 0)
    try:
        yield sock
    finally:
        sock.close()


def _connects(address: str, port: int) -> bool:
    with socket.create_connection((address, port), timeout=2):
        return True


def test_bind_listener_on_127_x_port_0(spare_loopback: Spare) -> None:
    addr = spare_loopback(1)[0]
    with bind_listener(addr, 0, service="web") as sock:
        host, port = bound_address(sock)
        assert host == addr
        assert port > 0
        assert sock.family == socket.AF_INET
        assert sock.getblocking() is False
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert _connects(str(addr), port)


@needs_ipv6
def test_bind_listener_on_ipv6_loopback_is_v6only() -> None:
    with bind_listener("::1", 0) as sock:
        host, port = bound_address(sock)
        assert host == V6("::1")
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert _connects("::1", port)


def test_address_in_use_names_address_service_and_errno(held: socket.socket) -> None:
    addr, port = bound_address(held)
    with pytest.raises(BindError) as caught:
        bind_listener(addr, port, service="db")
    error = caught.value
    assert error.errno == errno.EADDRINUSE
    assert error.message == f"{addr}:{port} for service 'db' is already in use."
    assert error.hint is not None
    assert "sandbox ports" in error.hint
    assert "--on-conflict next-port" in error.hint
    assert "next-address" in error.hint


def test_same_port_on_another_address_binds(held: socket.socket, spare_loopback: Spare) -> None:
    _, port = bound_address(held)
    other = next(a for a in spare_loopback(2) if a != bound_address(held)[0])
    with bind_listener(other, port) as sock:
        assert bound_address(sock) == (other, port)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.0.0.1", "127.255.255.255", "local"])
def test_non_loopback_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"\.$"):
        bind_listener(address, 0)


@pytest.mark.parametrize("port", [-1, 65536])
def test_invalid_port_is_refused(port: int) -> None:
    with pytest.raises(ValueError, match="not a port number"):
        bind_listener("127.0.0.1", port)


def test_bind_all_binds_every_request(spare_loopback: Spare) -> None:
    a, b = spare_loopback(2)
    socks = bind_all([(a, 0, "web"), (str(b), 0, "api")])
    try:
        assert [bound_address(s)[0] for s in socks] == [a, b]
    finally:
        for sock in socks:
            sock.close()


def test_bind_all_rolls_back_when_the_third_fails(spare_loopback: Spare) -> None:
    a, b, c = spare_loopback(3)
    with bind_listener(c, 0) as blocker:
        _, port = bound_address(blocker)
        with pytest.raises(BindError) as caught:
            bind_all([(a, port, "web"), (b, port, "api"), (c, port, "db")])
        assert caught.value.errno == errno.EADDRINUSE
        assert "'db'" in caught.value.message
        # The first two were bound, then closed: their address:port binds again.
        for addr in (a, b):
            with bind_listener(addr, port) as again:
                assert bound_address(again) == (addr, port)


def test_bind_all_rolls_back_on_a_refused_address(spare_loopback: Spare) -> None:
    (a,) = spare_loopback(1)
    with bind_listener(a, 0) as probe:
        _, port = bound_address(probe)
    with pytest.raises(ValueError, match="wildcard"):
        bind_all([(a, port, "web"), ("0.0.0.0", port, "api")])
    with bind_listener(a, port) as again:
        assert bound_address(again) == (a, port)


def test_describe_errno() -> None:
    assert describe_errno(errno.EADDRINUSE) == "is already in use"
    assert "not configured on this machine" in describe_errno(errno.EADDRNOTAVAIL)
    assert "permission denied" in describe_errno(errno.EACCES)
    assert describe_errno(errno.EMFILE) == f"cannot be bound: {os.strerror(errno.EMFILE)}"


def test_address_not_available_on_macos_gives_the_ifconfig_command() -> None:
    error = diagnose_bind_error(V4("127.0.0.5"), 8080, errno.EADDRNOTAVAIL, platform="darwin")
    assert error.message.startswith("127.0.0.5:8080 is not available")
    assert error.hint is not None
    assert "`sudo ifconfig lo0 alias 127.0.0.5 up`" in error.hint
    assert error.errno == errno.EADDRNOTAVAIL


def test_address_not_available_for_ipv6_points_at_disable_ipv6() -> None:
    error = diagnose_bind_error(V6("::1"), 9000, errno.EADDRNOTAVAIL, service="api")
    assert error.message.startswith("[::1]:9000 for service 'api' is not available")
    assert error.hint is not None
    assert "sysctl net.ipv6.conf.lo.disable_ipv6" in error.hint


def test_permission_denied_names_the_threshold() -> None:
    start = unprivileged_port_start()
    if start is None or start == 0:
        pytest.skip("this system has no privileged ports to name")
    error = diagnose_bind_error(V4("127.0.0.5"), start - 1, errno.EACCES, service="web")
    assert f"ports below {start} need privileges" in error.message
    assert error.hint is not None
    assert f"port of {start} or higher" in error.hint
    assert "CAP_NET_BIND_SERVICE" in error.hint


def test_unprivileged_port_start_matches_proc() -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as proc:
            expected: int | None = int(proc.read())
    except OSError:
        expected = None
    assert unprivileged_port_start() == expected


_BIND_IN_CHILD = """
import json, sys
from sandbox.errors import BindError
from sandbox.net.sockets import bind_listener, unprivileged_port_start
{before}
try:
    bind_listener({address!r}, {port}, service="db").close()
    print(json.dumps(None))
except BindError as e:
    print(json.dumps([e.errno, e.message, e.hint]))
"""


@pytest.mark.netns
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_permission_denied_for_real_without_cap_net_bind_service() -> None:
    # Root keeps its other powers but loses the one capability that allows low ports.
    code = _BIND_IN_CHILD.format(
        before="port = unprivileged_port_start() - 1", address="127.0.0.2", port="port"
    )
    outcome = netns_json(code, prefix=["setpriv", "--bounding-set=-net_bind_service"])
    assert outcome is not None, "the low port bound although CAP_NET_BIND_SERVICE was dropped"
    err, message, hint = outcome
    assert err == errno.EACCES
    assert "need privileges" in message
    assert "CAP_NET_BIND_SERVICE" in hint


@pytest.mark.netns
def test_address_not_available_for_real_when_lo_lost_127_8() -> None:
    code = _BIND_IN_CHILD.format(before="", address="127.0.0.2", port=0)
    outcome = netns_json(code, setup="ip link set lo up && ip addr del 127.0.0.1/8 dev lo")
    assert outcome is not None
    err, message, hint = outcome
    assert err == errno.EADDRNOTAVAIL
    assert message.startswith("127.0.0.2:0 for service 'db' is not available")
    assert "ip addr add 127.0.0.1/8 dev lo" in hint


@pytest.mark.netns
def test_address_not_available_for_real_when_ipv6_is_disabled() -> None:
    before = "open('/proc/sys/net/ipv6/conf/lo/disable_ipv6', 'w').write('1')"
    outcome = netns_json(_BIND_IN_CHILD.format(before=before, address="::1", port=0))
    assert outcome is not None
    err, message, hint = outcome
    assert err == errno.EADDRNOTAVAIL
    assert "[::1]:0" in message
    assert "disable_ipv6" in hint

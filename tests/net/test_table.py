"""Tests for sandbox.net.table: the real socket table, its owners, and the loopback filter."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable

import psutil
import pytest

from sandbox.net.listeners import Listener, Owner, command_text
from sandbox.net.sockets import bind_listener, bound_address
from sandbox.net.table import loopback_listeners, read_bindv6only, read_table
from tests.netns import netns_json

Spare = Callable[[int], list[ipaddress.IPv4Address]]
ip = ipaddress.ip_address
ME = Owner(1, "me", "me --serve", "alice")


def _find(table: list[Listener], address: object, port: int, protocol: str) -> list[Listener]:
    return [e for e in table if (e.address, e.port, e.protocol) == (address, port, protocol)]


def test_read_table_finds_our_tcp_listener_and_udp_socket(spare_loopback: Spare) -> None:
    tcp_addr, udp_addr = spare_loopback(2)
    with (
        bind_listener(tcp_addr, 0) as listener,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        udp.bind((str(udp_addr), 0))
        tcp_port = bound_address(listener)[1]
        udp_port = udp.getsockname()[1]
        table = read_table()
    me = psutil.Process()
    owner = Owner(os.getpid(), me.name(), command_text(me.cmdline(), me.name()), me.username())
    assert _find(table, tcp_addr, tcp_port, "tcp") == [Listener(tcp_addr, tcp_port, "tcp", owner)]
    assert _find(table, udp_addr, udp_port, "udp") == [Listener(udp_addr, udp_port, "udp", owner)]


def test_read_table_leaves_out_what_does_not_listen(spare_loopback: Spare) -> None:
    server_addr, idle_addr, udp_addr = spare_loopback(3)
    with (
        bind_listener(server_addr, 0) as server,
        socket.socket() as idle,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as connected_udp,
    ):
        idle.bind((str(idle_addr), 0))  # bound, never listening
        connected_udp.bind((str(udp_addr), 0))
        connected_udp.connect(server.getsockname())
        with socket.create_connection(server.getsockname(), timeout=2) as client:
            client_port = client.getsockname()[1]
            table = read_table()
            only_tcp = read_table(protocols=("tcp",))
        ports = {(e.address, e.port) for e in table}
        assert (server_addr, bound_address(server)[1]) in ports
        assert (idle_addr, idle.getsockname()[1]) not in ports
        assert (udp_addr, connected_udp.getsockname()[1]) not in ports
        assert all(e.port != client_port or e.address != ip("127.0.0.1") for e in table)
    assert {e.protocol for e in only_tcp} <= {"tcp"}


def test_read_table_reports_ipv6_loopback_as_v6only() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 is not bindable here")
        sock.listen()
        port = sock.getsockname()[1]
        (entry,) = _find(read_table(), ip("::1"), port, "tcp")
    # The kernel marks a socket bound to a specific IPv6 address IPv6-only.
    assert entry.v6only is True


def test_read_table_is_sorted_and_without_duplicates(spare_loopback: Spare) -> None:
    addrs = spare_loopback(3)
    socks = [bind_listener(a, 0) for a in addrs]
    try:
        table = read_table()
    finally:
        for sock in socks:
            sock.close()
    keys = [(e.port, e.address.version, int(e.address)) for e in table]
    assert keys == sorted(keys)
    assert len(set(table)) == len(table)


def test_owner_of_another_user_is_none_not_an_error(spare_loopback: Spare) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to look at the table as another user")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    if subprocess.run([*as_nobody, "-c", "pass"], capture_output=True, check=False).returncode:
        pytest.skip("this interpreter cannot run as user nobody")
    code = (
        "import json; from sandbox.net.table import read_table; print(json.dumps("
        "[[str(e.address), e.port, e.owner and e.owner.pid] for e in read_table()]))"
    )
    (addr,) = spare_loopback(1)
    with bind_listener(addr, 0) as sock:
        port = bound_address(sock)[1]
        done = subprocess.run([*as_nobody, "-c", code], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert [str(addr), port, None] in seen


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (
            Owner(4127, "postgres", "postgres -D /var/lib/pg", "postgres"),
            'pid 4127 "postgres -D /var/lib/pg" (user postgres)',
        ),
        (Owner(12, "kworker", None, "root"), 'pid 12 "kworker" (user root)'),
        (Owner(12, None, None, None), "pid 12"),
        (
            Owner(None, None, None, None),
            "a process of another user (its owner is not visible without privileges)",
        ),
    ],
)
def test_owner_describe(owner: Owner, expected: str) -> None:
    assert owner.describe() == expected


@pytest.mark.parametrize(
    ("address", "wildcard", "loopback", "hostport"),
    [
        ("0.0.0.0", True, False, "0.0.0.0:80"),
        ("::", True, False, "[::]:80"),
        ("::ffff:0.0.0.0", True, False, "[::ffff:0.0.0.0]:80"),
        ("127.0.0.2", False, True, "127.0.0.2:80"),
        ("::1", False, True, "[::1]:80"),
        ("::ffff:127.0.0.2", False, True, "[::ffff:127.0.0.2]:80"),
        ("192.168.1.5", False, False, "192.168.1.5:80"),
    ],
)
def test_listener_properties(address: str, wildcard: bool, loopback: bool, hostport: str) -> None:
    entry = Listener(ip(address), 80, "tcp", ME)
    assert (entry.is_wildcard, entry.is_loopback, entry.hostport) == (wildcard, loopback, hostport)


def test_loopback_listeners_keeps_loopback_and_wildcards_sorted() -> None:
    def at(address: str, port: int) -> Listener:
        return Listener(ip(address), port, "tcp", ME)

    table = [
        at("::1", 9000),
        at("192.168.1.5", 22),
        at("127.0.0.3", 5432),
        at("0.0.0.0", 22),
        at("fe80::1", 5432),
        at("::", 5432),
        at("127.0.0.2", 5432),
        at("::ffff:127.0.0.9", 80),
    ]
    assert loopback_listeners(table) == [
        at("0.0.0.0", 22),
        at("::ffff:127.0.0.9", 80),
        at("127.0.0.2", 5432),
        at("127.0.0.3", 5432),
        at("::", 5432),
        at("::1", 9000),
    ]


def test_read_bindv6only_matches_proc() -> None:
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as proc:
            expected = proc.read().strip() == "1"
    except OSError:
        expected = False
    assert read_bindv6only() is expected


_V6ONLY_IN_CHILD = """
import json, socket
import sandbox.net.table as table
if {blind}:
    table._kernel_v6only = lambda protocols: {{}}  # as where sock_diag is unavailable
def hold(family, address, v6only, port=0):
    s = socket.socket(family)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    s.bind((address, port)); s.listen()
    return s
dual = hold(socket.AF_INET6, "::", False)
only = hold(socket.AF_INET6, "::", True)
paired = hold(socket.AF_INET6, "::", True)
v4 = hold(socket.AF_INET, "0.0.0.0", None, paired.getsockname()[1])
names = {{dual.getsockname()[1]: "dual", only.getsockname()[1]: "v6only",
          paired.getsockname()[1]: "paired"}}
print(json.dumps({{names[e.port]: e.v6only for e in table.read_table()
                  if e.address.version == 6}}))
"""


@pytest.mark.netns
def test_v6only_comes_from_the_kernel() -> None:
    seen = netns_json(_V6ONLY_IN_CHILD.format(blind=False))
    assert seen == {"dual": False, "v6only": True, "paired": True}


@pytest.mark.netns
def test_v6only_is_inferred_or_unknown_without_the_kernel() -> None:
    seen = netns_json(_V6ONLY_IN_CHILD.format(blind=True))
    # Only the [::] that shares its port with 0.0.0.0 must be IPv6-only; the rest is unknown.
    assert seen == {"dual": None, "v6only": None, "paired": True}


def test_read_listeners_sees_what_read_table_sees_without_owners(spare_loopback: Spare) -> None:
    """The quick table a plan is made from: the same sockets (TCP listening, UDP unconnected,
    IPv4 and IPv6, v6only as the kernel says), only without owners."""
    from sandbox.net.table import read_listeners

    tcp_addr, udp_addr, idle_addr, conn_addr = spare_loopback(4)
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(bind_listener(tcp_addr, 0))]
        udp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        udp.bind((str(udp_addr), 0))
        idle = stack.enter_context(socket.socket())
        idle.bind((str(idle_addr), 0))  # bound, never listening: not in either table
        connected = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        connected.bind((str(conn_addr), 0))
        connected.connect(held[0].getsockname())
        ours = {
            ("tcp", tcp_addr, bound_address(held[0])[1]),
            ("udp", udp_addr, udp.getsockname()[1]),
        }
        v6 = stack.enter_context(socket.socket(socket.AF_INET6))
        with contextlib.suppress(OSError):  # where ::1 is not bindable, IPv4 alone
            v6.bind(("::1", 0))
            v6.listen()
            ours.add(("tcp", ip("::1"), v6.getsockname()[1]))
        mine = {(idle_addr, idle.getsockname()[1]), (conn_addr, connected.getsockname()[1])}
        quick = read_listeners()
        full = read_table()
    assert quick is not None, "/proc/net is readable on Linux"

    def keyed(table: list[Listener]) -> set[tuple[object, ...]]:
        return {
            (e.protocol, e.address, e.port, e.v6only)
            for e in table
            if (e.protocol, e.address, e.port) in ours or (e.address, e.port) in mine
        }

    assert len(keyed(full)) == len(ours)
    assert keyed(quick) == keyed(full)
    assert {e.owner for e in quick} <= {Owner(None, None, None, None)}

"""sandbox.net.listening: the TCP listeners from sock_diag are the ones read_table lists."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from sandbox.net.listeners import Listener
from sandbox.net.listening import read_tcp_listeners
from sandbox.net.table import read_table

Spare = Callable[[int], list[ipaddress.IPv4Address]]


@contextlib.contextmanager
def _sharing_child(sock: socket.socket) -> Iterator[int]:
    """A child process that holds `sock` too (as a forked worker would); yields its pid."""
    code = "import sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(sock.fileno(),),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def _ours(table: list[Listener], ports: set[int]) -> list[Listener]:
    return [entry for entry in table if entry.port in ports]


def test_the_same_listeners_owners_and_order_as_read_table(spare_loopback: Spare) -> None:
    addresses = spare_loopback(3)
    with contextlib.ExitStack() as stack:
        socks = []
        for address in addresses:
            sock = stack.enter_context(socket.socket())
            sock.bind((str(address), 0))
            sock.listen()
            socks.append(sock)
        # Two addresses on one port, and one socket that a child process holds as well.
        twin = stack.enter_context(socket.socket())
        twin.bind((str(addresses[1]), socks[0].getsockname()[1]))
        twin.listen()
        child = stack.enter_context(_sharing_child(socks[2]))
        if socket.has_ipv6:
            with contextlib.suppress(OSError):
                six = socket.socket(socket.AF_INET6)
                stack.callback(six.close)
                six.bind(("::1", 0))
                six.listen()
                socks.append(six)
        # A connected (not listening) socket on one of the ports must not be listed.
        client = stack.enter_context(socket.create_connection(socks[1].getsockname()[:2]))
        assert client.getpeername()[1] == socks[1].getsockname()[1]
        ports = {sock.getsockname()[1] for sock in socks}
        shared_port = socks[2].getsockname()[1]
        fast = _ours(read_tcp_listeners(), ports)
        slow = _ours(read_table(protocols=("tcp",)), ports)
    assert fast == slow
    assert len(fast) == len(socks) + 1  # the twin too
    shared = [e for e in fast if e.port == shared_port]
    assert [e.owner.pid for e in shared if e.owner] == [max(child, os.getpid())]


def test_no_listener_leaves_an_empty_list_for_its_port(spare_loopback: Spare) -> None:
    (address,) = spare_loopback(1)
    with socket.socket() as sock:
        sock.bind((str(address), 0))  # bound, never listening
        port = sock.getsockname()[1]
        assert _ours(read_tcp_listeners(), {port}) == []


@pytest.mark.parametrize("count", [0, 1])
def test_a_listener_appears_and_goes(spare_loopback: Spare, count: int) -> None:
    (address,) = spare_loopback(1)
    sock = socket.socket()
    try:
        sock.bind((str(address), 0))
        port = sock.getsockname()[1]
        if count:
            sock.listen()
        assert len(_ours(read_tcp_listeners(), {port})) == count
    finally:
        sock.close()
    assert _ours(read_tcp_listeners(), {port}) == []

"""A program that listens beyond loopback (wildcard or a real address) fails `up` with exit 4,
naming what it bound and the flag to pass; wildcard listeners only in a private namespace."""

from __future__ import annotations

import ipaddress
import json
import shutil
import sys

import pytest

from sandbox.net.listeners import Listener, Owner
from sandbox.runtime.exposure import advice, exposed
from tests.netns import netns_json


def _listener(address: str, pid: int) -> Listener:
    owner = Owner(pid=pid, name="x", cmdline="x", user="me")
    return Listener(ipaddress.ip_address(address), 6379, "tcp", owner)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3", "::ffff:0.0.0.0"])
def test_wildcards_and_outside_addresses_of_the_family_are_exposed(address: str) -> None:
    table = [_listener(address, 10), _listener(address, 99), _listener("127.0.0.5", 10)]
    assert exposed(table, {10, 11}) == [table[0]]


def test_loopback_listeners_of_the_family_are_fine() -> None:
    table = [_listener("127.0.0.5", 10), _listener("::1", 11), _listener("::ffff:127.0.0.9", 10)]
    assert exposed(table, {10, 11}) == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["redis-server", "--port", "6379"], "--bind 127.0.0.5"),
        (["sh", "-c", "exec /usr/sbin/nginx -c x"], "listen 127.0.0.5:6379;"),
        (["node", "server.js"], "server.listen(port, host)"),
        (["./my-server"], "make it listen on {address} (127.0.0.5) only"),
    ],
)
def test_advice_names_the_flag_of_the_program(argv: list[str], says: str) -> None:
    assert says in advice(argv, "127.0.0.5", 6379)


# Runs in a private network namespace: a wildcard listener there reaches nothing.
_UP = """
import asyncio, json, sys
from sandbox.errors import SandboxError
from sandbox.net.table import read_table
from sandbox.profile.loader import load_profile_data
from sandbox.runtime.sandbox import Sandbox

run = sys.argv[1]
profile = load_profile_data({"name": "wild", "services": {
    "peer": {"kind": "tcp", "address": "127.0.0.3", "port": 7001},
    "app": {"kind": "command", "address": "127.0.0.2", "port": 7000, "run": run}}})

async def main():
    try:
        async with Sandbox(profile, wait_timeout=15):
            return {"started": True}
    except SandboxError as exc:
        return {"code": int(exc.exit_code), "message": exc.message, "hint": exc.hint}

out = asyncio.run(main())
out["left"] = sorted(str(x.address) + ":" + str(x.port) for x in read_table())
print(json.dumps(out))
"""


def _up_in_netns(run: str) -> dict[str, object]:
    code = "import sys; sys.argv = ['x', " + json.dumps(run) + "]\n" + _UP
    result: dict[str, object] = netns_json(code, timeout=30)
    return result


@pytest.mark.netns
def test_a_python_program_on_the_wildcard_fails_up_with_exit_4_and_is_stopped() -> None:
    script = (
        "import socket, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        "s.bind(('0.0.0.0', 7000)); s.listen(); time.sleep(300)"
    )
    out = _up_in_netns(f"{sys.executable} -c {json.dumps(script)}")
    assert out["code"] == 4, out
    assert "listens on 0.0.0.0:7000/tcp, beyond loopback" in str(out["message"])
    assert "app (127.0.0.2:7000)" in str(out["message"])
    assert "not to '' or 0.0.0.0" in str(out["hint"])
    assert out["left"] == [], "everything, the stub included, was torn down"


@pytest.mark.netns
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_without_bind_fails_up_naming_the_bind_flag() -> None:
    out = _up_in_netns('redis-server --port {port} --save "" --appendonly no')
    assert out["code"] == 4, out
    assert "0.0.0.0:7000/tcp" in str(out["message"])
    assert "--bind 127.0.0.2" in str(out["hint"])
    assert out["left"] == []


@pytest.mark.netns
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_bound_to_its_address_is_fine() -> None:
    out = _up_in_netns('redis-server --bind {address} --port {port} --save "" --appendonly no')
    assert out.get("started") is True, out


@pytest.mark.netns
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_listening_on_a_port_alone_fails_up_naming_the_host_argument() -> None:
    script = "require('net').createServer().listen(7000)"
    out = _up_in_netns(f"node -e {json.dumps(script)}")
    assert out["code"] == 4, out
    assert ":7000/tcp, beyond loopback" in str(out["message"])
    assert "server.listen(port, host)" in str(out["hint"])
    assert out["left"] == []

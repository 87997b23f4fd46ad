"""`up` / `status` / `logs` / `down` through the real CLI, with real sockets on loopback."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli
from tests.helpers import listening

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # literal loopback URLs only
        return response.status, response.read().decode()


def _stub_profile(name: str, addresses: list[ipaddress.IPv4Address]) -> dict[str, Any]:
    a, b, c = (str(x) for x in addresses)
    hello = {"path": "/api/hello", "response": {"json": {"hi": "{{ services.db.port }}"}}}
    ping = {"expect": "PING", "send": "+PONG\r\n"}
    return {
        "name": name,
        "services": {
            "web": {"kind": "http", "address": a, "depends_on": ["api"],
                    "routes": [{"path": "/api/{rest:.*}", "proxy": "api"}]},
            "api": {"kind": "http", "address": b, "depends_on": ["db"],
                    "routes": [hello]},
            "db": {"kind": "tcp", "address": c, "tcp": {"rules": [ping]}},
        },
    }  # fmt: skip


def test_up_detached_status_logs_down(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    addresses = spare_loopback(3)
    path = write_profile(_stub_profile("trio", addresses))

    up = cli("up", str(path), "-d", "--json")
    assert up.returncode == 0, up.stderr
    status = json.loads(up.stdout)
    assert status["name"] == "trio"
    assert status["state"] == "running"
    services = {s["name"]: s for s in status["services"]}
    assert all(s["reachable"] for s in services.values())
    assert services["web"]["address"] == str(addresses[0])

    code, body = _get(services["web"]["url"] + "/api/hello")
    assert code == 200
    assert json.loads(body) == {"hi": str(services["db"]["port"])}

    listed = cli.json("status")["sandboxes"]
    assert [s["name"] for s in listed] == ["trio"]

    logs = cli("logs", "trio", "api", "--tail", "20")
    assert "GET /api/hello 200" in logs.stdout

    down = cli("down", "trio")
    assert down.returncode == 0, down.stderr
    for s in services.values():
        assert s["port"] not in listening(s["address"])
    assert cli.json("status") == {"sandboxes": []}
    assert not (cli.state / "trio").exists()


def test_conflict_at_the_third_service_starts_nothing(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    addresses = spare_loopback(3)
    data = _stub_profile("clash", addresses)
    with socket.socket() as held:
        held.bind((str(addresses[2]), 0))
        held.listen()
        data["services"]["db"]["port"] = held.getsockname()[1]
        path = write_profile(data)
        up = cli("up", str(path), "-d")
        assert up.returncode == 4, up.stderr
        assert f"pid {os.getpid()}" in up.stderr
        assert "db (" in up.stderr
    for address in addresses[:2]:
        assert listening(str(address)) == []
    assert not (cli.state / "clash" / "state.json").exists()


def test_second_up_is_refused_while_the_first_runs(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    path = write_profile(_stub_profile("twice", spare_loopback(3)))
    assert cli("up", str(path), "-d").returncode == 0
    again = cli("up", str(path), "-d")
    assert again.returncode == 4
    assert 'sandbox "twice" is already running' in again.stderr
    assert cli.json("status")["sandboxes"][0]["state"] == "running"


def test_down_after_the_supervisor_was_sigkilled(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    addresses = spare_loopback(3)
    path = write_profile(_stub_profile("killed", addresses))
    first = cli.json("up", str(path), "-d")
    os.kill(first["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while cli.json("status")["sandboxes"][0]["state"] != "stale":
        assert time.monotonic() < deadline, "the record never went stale"
    down = cli("down", "killed")
    assert down.returncode == 0, down.stderr
    for address in addresses:
        assert listening(str(address)) == []
    again = cli("up", str(path), "-d")
    assert again.returncode == 0, again.stderr


def test_not_ready_exits_5_and_leaves_nothing(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    (address,) = spare_loopback(1)
    path = write_profile({
        "name": "sick",
        "services": {"api": {
            "kind": "http", "address": str(address),
            # Long enough for a probe to finish on a loaded machine, so its 503 is reported.
            "ready": {"http": "/health", "status": 200, "timeout": "2s"},
            "routes": [{"path": "/health", "response": {"status": 503}}],
        }},
    })  # fmt: skip
    up = cli("up", str(path), "-d")
    assert up.returncode == 5, up.stderr
    assert "503" in up.stderr
    assert listening(str(address)) == []
    assert not (cli.state / "sick" / "state.json").exists()


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_foreground_stops_cleanly_on_a_signal(
    cli: Cli,
    write_profile: Callable[[dict[str, Any]], Path],
    spare_loopback: Any,
    signum: int,
    code: int,
) -> None:
    (address,) = spare_loopback(1)
    path = write_profile(
        {"name": "fg", "services": {"api": {"kind": "http", "address": str(address)}}}
    )
    proc = cli.popen("up", str(path))
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        seen = ""
        while "Ctrl-C stops them" not in seen:
            assert time.monotonic() < deadline, seen
            line = proc.stderr.readline()
            assert line, f"up exited early: {seen}"
            seen += line
        port = cli.json("status")["sandboxes"][0]["services"][0]["port"]
        assert port in listening(str(address))
        proc.send_signal(signum)
        assert proc.wait(timeout=20) == code
        assert listening(str(address)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None


@pytest.mark.parametrize("profile", ["ipv6-pair", "web-db-api"])
def test_bundled_profiles_come_up_and_go_down(cli: Cli, profile: str) -> None:
    # next-port: a machine that already uses a bundled port must not fail the suite
    status = cli.json("up", profile, "-d", "--on-conflict", "next-port")
    assert status["services"], status
    assert all(s["reachable"] for s in status["services"])
    if profile == "ipv6-pair":
        assert all(
            s["url"].startswith(("http://[::1]:", "tcp://[::1]:")) for s in status["services"]
        )
    assert cli("down", profile).returncode == 0
    for s in status["services"]:
        assert s["port"] not in listening(s["address"])


def test_status_of_a_sandbox_that_does_not_run_exits_5(cli: Cli) -> None:
    done = cli("status", "ghost")
    assert done.returncode == 5
    assert 'sandbox "ghost" is not running' in done.stdout
    assert cli("status").returncode == 0  # nothing runs, and nothing was asked for


def test_down_of_nothing_says_so(cli: Cli) -> None:
    done = cli("down", "ghost")
    assert done.returncode == 0
    assert 'sandbox "ghost" is not running' in done.stdout


def test_foreground_json_and_usage_errors(cli: Cli) -> None:
    bad = cli("up", "web-db-api", "--on-conflict", "sideways")
    assert bad.returncode == 2
    assert "--on-conflict" in bad.stderr
    missing = cli("up", "no-such-profile")
    assert missing.returncode == 2
    assert "no-such-profile" in missing.stderr

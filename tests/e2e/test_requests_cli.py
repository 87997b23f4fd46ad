"""`sandbox requests` and `sandbox.attach` against a detached sandbox, through the real CLI."""

from __future__ import annotations

import contextlib
import json
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.errors import VerificationError
from tests.e2e.conftest import Cli

DEADLINE = 10.0


def _profile(addresses: list[Any]) -> dict[str, Any]:
    api, cache = (str(a) for a in addresses)
    return {
        "name": "journal-cli",
        "services": {
            "api": {"kind": "http", "address": api, "routes": [
                {"method": "POST", "path": "/orders", "response": {"status": 201}},
                {"method": "GET", "path": "/orders/{id:\\d+}", "response": {}}]},
            "cache": {"kind": "tcp", "address": cache,
                      "tcp": {"rules": [{"expect": "PING", "send": "+PONG\r\n"}]}},
        },
    }  # fmt: skip


def _send(method: str, url: str) -> int:
    request = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture
def running(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> dict[str, str]:
    """A detached sandbox: each service's URL (the cli fixture takes it down)."""
    up = cli.json("up", str(write_profile(_profile(spare_loopback(2)))), "-d")
    assert up["control"].startswith("http://127.0.0.1:")
    return {s["name"]: s["url"] for s in up["services"]}


@contextlib.contextmanager
def following(cli: Cli, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`sandbox requests ... -f` in a subprocess, killed and its pipes closed afterwards."""
    proc = cli.popen("requests", *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _line(proc: subprocess.Popen[str]) -> str:
    """The next line the process prints, within DEADLINE."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
    assert ready, "no output within the deadline"
    return proc.stdout.readline()


def test_requests_lists_the_journal_as_a_table_and_as_json(
    cli: Cli, running: dict[str, str]
) -> None:
    assert _send("POST", running["api"] + "/orders") == 201
    assert _send("GET", running["api"] + "/orders/abc") == 404
    table = cli("requests", "journal-cli", "api")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "#",
        "TIME",
        "SERVICE",
        "CLIENT",
        "REQUEST",
        "STATUS",
        "ROUTE",
        "MS",
    ]
    assert "POST /orders" in lines[1]
    assert "201" in lines[1]
    assert "[0] POST /orders" in lines[1]
    assert "none; nearest [1] GET /orders/{id:\\d+}: path parameter id='abc'" in lines[2]
    document = cli.json("requests", "journal-cli", "--method", "post")
    assert [(e["service"], e["path"], e["status"]) for e in document["entries"]] == [
        ("api", "/orders", 201)
    ]


def test_requests_explains_what_it_cannot_find(cli: Cli, running: dict[str, str]) -> None:
    unknown = cli("requests", "journal-cli", "nope")
    assert unknown.returncode == 2
    assert 'no stub named "nope"' in unknown.stderr
    assert "Traceback" not in unknown.stderr
    absent = cli("requests", "ghost")
    assert absent.returncode == 2
    assert 'sandbox "ghost" is not running' in absent.stderr


def test_follow_streams_new_requests_and_ctrl_c_exits_130(
    cli: Cli, running: dict[str, str]
) -> None:
    with following(cli, "journal-cli", "-f", "--json") as proc:
        assert _send("POST", running["api"] + "/orders") == 201
        first = json.loads(_line(proc))
        assert (first["method"], first["path"], first["status"]) == ("POST", "/orders", 201)
        assert _send("GET", running["api"] + "/orders/7") == 200
        second = json.loads(_line(proc))
        assert second["seq"] > first["seq"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=DEADLINE) == 130


def test_follow_into_a_closed_pipe_ends_quietly(cli: Cli, running: dict[str, str]) -> None:
    with following(cli, "journal-cli", "api", "-f") as proc:
        assert _line(proc).startswith("#")  # the header
        assert proc.stdout is not None
        proc.stdout.close()  # the reader goes away, as `| head -1` would
        deadline = time.monotonic() + DEADLINE
        while proc.poll() is None and time.monotonic() < deadline:
            _send("POST", running["api"] + "/orders")  # something to write into the pipe
            time.sleep(0.05)  # pacing the requests; the exit is what the loop waits for
        assert proc.wait(timeout=DEADLINE) == 141  # as for SIGPIPE, and nothing said
        assert proc.stderr is not None
        assert proc.stderr.read() == ""


def test_follow_ends_when_the_sandbox_stops(cli: Cli, running: dict[str, str]) -> None:
    with following(cli, "journal-cli", "-f", "--json") as proc:
        assert _send("POST", running["api"] + "/orders") == 201
        assert json.loads(_line(proc))["path"] == "/orders"
        assert cli("down", "journal-cli").returncode == 0
        assert proc.wait(timeout=DEADLINE) == 0


def test_attach_verifies_a_detached_sandbox(cli: Cli, running: dict[str, str]) -> None:
    sb = sandbox.attach("journal-cli", state_root=cli.state)
    assert sb.url("api") == running["api"]
    assert _send("POST", running["api"] + "/orders") == 201
    assert sb.verify("api", method="POST", path="/orders", times=1) == 1
    with pytest.raises(VerificationError, match="received it 1 time"):
        sb.verify("api", method="POST", path="/orders", times=2)
    assert sb.reset() == ["api", "cache"]
    assert sb.requests() == ()


def test_the_attach_fixture_reaches_a_sandbox_by_name(
    cli: Cli, running: dict[str, str], sandbox_attach: Callable[..., Any]
) -> None:
    assert _send("GET", running["api"] + "/orders/7") == 200
    sb = sandbox_attach("journal-cli", state_root=cli.state)
    assert [e.path for e in sb.requests("api")] == ["/orders/7"]

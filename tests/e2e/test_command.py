"""Command services through the real CLI: env wiring, teardown of whole groups, exits at once,
taken ports, a SIGKILLed supervisor, restarts, and the foreground log stream."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import shlex
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.e2e.conftest import Cli
from tests.helpers import gone, listening
from tests.helpers import wait_until as _wait_until

pytestmark = pytest.mark.e2e

SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"
WriteProfile = Callable[[dict[str, Any]], Path]
Spare = Callable[[int], list[ipaddress.IPv4Address]]


def _serve(*extra: str) -> str:
    """The run line of the test server, with any extra (already quoted) arguments."""
    return " ".join(
        [shlex.quote(sys.executable), shlex.quote(str(SERVER)), "{address} {port}", *extra]
    )


def _in_shell(script: str) -> str:
    return "sh -c " + shlex.quote(script)


def _get(address: str, port: int, path: str) -> str:
    url = f"http://{address}:{port}{path}"  # a literal loopback address, no name lookup
    with urllib.request.urlopen(url, timeout=5) as response:
        body: str = response.read().decode()
        return body


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test saw; any still alive at the end are SIGKILLed, with their process groups."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            if gone(pid):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)


def _up(cli: Cli, path: Path) -> dict[str, Any]:
    done = cli("up", str(path), "-d", "--json")
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status["services"]}


def test_a_program_sees_every_address_and_down_stops_it(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare, leftovers: list[int]
) -> None:
    a, b = (str(x) for x in spare_loopback(2))
    (cli.cwd / "work").mkdir()
    path = write_profile({
        "name": "wired",
        "services": {
            "db": {"kind": "tcp", "address": a},
            "my-app": {
                "kind": "command", "address": b, "depends_on": ["db"], "run": _serve(),
                "cwd": "work", "env": {"EXTRA": "{services.db.url}"}, "ready": {"http": "/"},
            },
        },
    })  # fmt: skip
    status = _up(cli, path)
    services = _by_name(status)
    app, db = services["my-app"], services["db"]
    leftovers.append(app["pid"])
    assert app["reachable"]

    info = json.loads(_get(b, app["port"], "/env"))
    env = info["env"]
    assert env["SANDBOX_DB_HOST"] == a
    assert env["SANDBOX_DB_PORT"] == str(db["port"])
    assert env["SANDBOX_DB_URL"] == db["url"]
    assert env["SANDBOX_MY_APP_HOST"] == env["SANDBOX_HOST"] == b
    assert env["SANDBOX_MY_APP_PORT"] == env["SANDBOX_PORT"] == str(app["port"])
    assert info["extra"] == db["url"]
    assert info["cwd"] == str(cli.cwd / "work")
    assert info["pid"] == info["pgid"] == app["pid"]
    assert info["pgid"] != os.getpgid(status["supervisor_pid"])
    record = json.loads((cli.state / "wired" / "state.json").read_text())
    recorded = {s["name"]: s for s in record["services"]}["my-app"]
    assert (recorded["pid"], recorded["pgid"]) == (app["pid"], app["pid"])
    assert recorded["start_time"] is not None

    logs = cli("logs", "wired", "my-app").stdout
    assert f"ready on {b}:{app['port']}" in logs
    assert "GET /env" in logs

    down = cli("down", "wired")
    assert down.returncode == 0, down.stderr
    assert gone(app["pid"])
    assert listening(a) == []
    assert listening(b) == []


def test_a_background_grandchild_and_an_ignored_sigterm_do_not_survive_down(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare, leftovers: list[int]
) -> None:
    a, b = (str(x) for x in spare_loopback(2))
    path = write_profile({
        "name": "stubborn",
        "services": {
            "shell": {"kind": "command", "address": a,
                      "run": _in_shell(f"sleep 1000 & exec {_serve()}")},
            "deaf": {"kind": "command", "address": b, "run": _serve("--ignore-term"),
                     "stop_timeout": "300ms"},
        },
    })  # fmt: skip
    services = _by_name(_up(cli, path))
    shell = json.loads(_get(a, services["shell"]["port"], "/env"))
    deaf = json.loads(_get(b, services["deaf"]["port"], "/env"))
    pids = [shell["pid"], *shell["children"], deaf["pid"]]
    leftovers.extend(pids)
    assert len(shell["children"]) == 1  # the background sleep, now a child of the server
    assert os.getpgid(shell["children"][0]) == shell["pgid"]

    t0 = time.monotonic()
    down = cli("down", "stubborn")
    took = time.monotonic() - t0
    assert down.returncode == 0, down.stdout + down.stderr
    assert [pid for pid in pids if not gone(pid)] == []
    assert took >= 0.3  # the ignored SIGTERM cost the grace, no more
    assert listening(a) == []
    assert listening(b) == []


def test_a_program_that_exits_at_once_fails_up_with_its_last_output(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare
) -> None:
    a, b = (str(x) for x in spare_loopback(2))
    path = write_profile({
        "name": "broken",
        "services": {
            "db": {"kind": "tcp", "address": a},
            "app": {"kind": "command", "address": b, "depends_on": ["db"],
                    "run": _serve("--say 'loading config'", "--say 'fatal: no config file'",
                                  "--exit 7"),
                    "ready": {"timeout": "30s"}},
        },
    })  # fmt: skip
    t0 = time.monotonic()
    up = cli("up", str(path), "-d")
    took = time.monotonic() - t0
    assert up.returncode == 5, up.stderr
    assert "exited with code 7 before it was ready" in up.stderr
    assert "loading config" in up.stderr
    assert "fatal: no config file" in up.stderr
    assert took < 15  # at once, not at the 30 s deadline
    assert listening(a) == []
    assert not (cli.state / "broken" / "state.json").exists()


def test_a_port_taken_by_someone_else_is_exit_4_and_the_program_never_starts(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare
) -> None:
    (a,) = (str(x) for x in spare_loopback(1))
    with socket.create_server((a, 0)) as held:
        port = held.getsockname()[1]
        path = write_profile({
            "name": "taken",
            "services": {"app": {"kind": "command", "address": a, "port": port,
                                 "run": _in_shell(f"touch started; exec {_serve()}")}},
        })  # fmt: skip
        up = cli("up", str(path), "-d")
        assert up.returncode == 4, up.stderr
        assert f"{a}:{port}" in up.stderr
        assert f"pid {os.getpid()}" in up.stderr
        assert listening(a) == [port]  # only ours
    assert not (cli.cwd / "started").exists()
    assert not (cli.state / "taken" / "state.json").exists()


def test_a_sigkilled_supervisor_takes_its_programs_with_it(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare, leftovers: list[int]
) -> None:
    a, b = (str(x) for x in spare_loopback(2))
    path = write_profile({
        "name": "orphans",
        "services": {
            "app": {"kind": "command", "address": a, "run": _serve()},
            "shell": {"kind": "command", "address": b,
                      "run": _in_shell(f"sleep 1000 & exec {_serve()}")},
        },
    })  # fmt: skip
    status = _up(cli, path)
    services = _by_name(status)
    app_pid = services["app"]["pid"]
    shell = json.loads(_get(b, services["shell"]["port"], "/env"))
    leftovers.extend([app_pid, shell["pid"], *shell["children"]])

    os.kill(status["supervisor_pid"], signal.SIGKILL)
    # PR_SET_PDEATHSIG: the kernel kills each program as its parent dies, before any `down`.
    _wait_until(lambda: gone(app_pid) and gone(shell["pid"]), "the programs to die")
    assert cli.json("status")["sandboxes"][0]["state"] == "stale"

    down = cli.json("down", "orphans")["sandboxes"][0]
    assert down["clean"], down
    assert not down["supervisor_was_alive"]
    # What a program started in the background is not covered by PDEATHSIG: `down` kills
    # the recorded process group.
    assert shell["children"], shell  # all() of nothing would pass
    assert all(gone(pid) for pid in shell["children"])
    assert listening(a) == []
    assert listening(b) == []


def test_restart_on_failure_brings_a_crashed_program_back_and_status_counts_it(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare, leftovers: list[int]
) -> None:
    (a,) = (str(x) for x in spare_loopback(1))
    path = write_profile({
        "name": "phoenix",
        "services": {"app": {"kind": "command", "address": a, "run": _serve(),
                             "restart": "on-failure", "max_restarts": 2}},
    })  # fmt: skip
    app = _by_name(_up(cli, path))["app"]
    first = app["pid"]
    leftovers.append(first)
    assert app["restarts"] == 0
    with contextlib.suppress(OSError):  # it may go before the answer is read
        _get(a, app["port"], "/crash")

    def restarted() -> dict[str, Any] | None:
        now = cli.json("status", "phoenix")["sandboxes"][0]["services"][0]
        return now if now["restarts"] == 1 and now["reachable"] else None

    _wait_until(restarted, "the restart")
    now = restarted()
    assert now is not None
    leftovers.append(now["pid"])
    assert now["pid"] != first
    assert gone(first)
    assert _get(a, now["port"], "/") == "ok\n"
    logs = cli("logs", "phoenix", "app").stdout
    assert "[sandbox] the program exited with code 3" in logs
    assert "[sandbox] restart 1 of 2 in 0.2 s" in logs

    assert cli("down", "phoenix").returncode == 0
    assert gone(now["pid"])


def _read_until(stream: IO[str] | None, needle: str, timeout: float = 20.0) -> str:
    """Read `stream` (raw, unbuffered) until `needle` shows up, with a deadline."""
    assert stream is not None
    fd, seen = stream.fileno(), b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {needle!r} in: {seen.decode()}"
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 65536)
            assert chunk, f"stdout closed before {needle!r}: {seen.decode()}"
            seen += chunk
    return seen.decode()


def test_foreground_interleaves_the_program_output_and_ctrl_c_stops_it(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare, leftovers: list[int]
) -> None:
    (a,) = (str(x) for x in spare_loopback(1))
    path = write_profile(
        {"name": "fgcmd", "services": {"app": {"kind": "command", "address": a, "run": _serve()}}}
    )
    proc = cli.popen("up", str(path))
    try:
        _read_until(proc.stderr, "Ctrl-C stops them")
        app = cli.json("status", "fgcmd")["sandboxes"][0]["services"][0]
        leftovers.append(app["pid"])
        assert _get(a, app["port"], "/hello") == "ok\n"
        seen = _read_until(proc.stdout, "GET /hello")
        assert any(line.startswith("app") and "| GET /hello" in line for line in seen.splitlines())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
        assert gone(app["pid"])
        assert listening(a) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_ready_http_endpoint_slower_than_two_seconds_becomes_ready(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Spare
) -> None:
    # Each readiness attempt may take the whole budget: a fixed 2 s per attempt never
    # saw this endpoint, which answers after 2.5 s, however long `ready.timeout` was.
    (address,) = (str(x) for x in spare_loopback(1))
    path = write_profile({
        "name": "slowpoke",
        "services": {
            "app": {"kind": "command", "address": address, "run": _serve("--slow 2.5"),
                    "ready": {"http": "/health", "timeout": "10s"}},
        },
    })  # fmt: skip
    up = cli("up", str(path), "-d")
    try:
        assert up.returncode == 0, up.stderr
    finally:
        assert cli("down", "slowpoke").returncode == 0
    assert listening(address) == []

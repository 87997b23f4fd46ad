"""Through the real CLI: `status` tells each program's life and exits 5 when one is not ready;
`logs` still works after `down` and after a failed `up`, as the failure hint promises."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e

SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"
SERVE = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} {{address}} {{port}}"
WriteProfile = Callable[[dict[str, Any]], Path]


def _profile(address: str, **service: Any) -> dict[str, Any]:
    app = {"kind": "command", "address": address, "run": SERVE, **service}
    return {"name": "life", "services": {"app": app}}


def test_status_shows_an_exited_program_and_exits_5(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    path = write_profile(_profile(str(spare_loopback(1)[0])))
    assert cli("up", str(path), "-d").returncode == 0
    assert cli("status", "life").returncode == 0
    app = cli.json("status", "life")["sandboxes"][0]["services"][0]
    assert (app["state"], app["ok"]) == ("ready", True)
    with urllib.request.urlopen(f"http://{app['address']}:{app['port']}/crash", timeout=5):
        pass  # the server answers, then exits with code 3
    deadline = time.monotonic() + 5
    while cli.json("status", "life")["sandboxes"][0]["services"][0]["state"] != "exited":
        assert time.monotonic() < deadline, "status never said exited"
        time.sleep(0.05)
    done = cli("status", "life")
    assert done.returncode == 5
    assert "exited (code 3)" in done.stdout
    shown = cli.json("status", "life")["sandboxes"][0]
    assert shown["ok"] is False
    assert (shown["services"][0]["exit_code"], shown["services"][0]["exit"]) == (3, "code 3")


def test_the_logs_hint_of_a_failed_up_works_and_logs_outlive_down(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    address = str(spare_loopback(1)[0])
    broken = write_profile(_profile(address, run=f"{SERVE} --say no-config-found --exit 2"))
    failed = cli("up", str(broken), "-d")
    assert failed.returncode == 5
    hint = re.search(r"`(sandbox logs [^`]+)`", failed.stderr)
    assert hint is not None, failed.stderr
    shown = cli(*shlex.split(hint.group(1))[1:])
    assert shown.returncode == 0, shown.stderr
    assert "no-config-found" in shown.stdout
    assert 'sandbox "life" is not running; these are the logs of its last run' in shown.stderr

    working = write_profile(_profile(address, run=f"{SERVE} --say second-run"))
    assert cli("up", str(working), "-d").returncode == 0
    assert cli("down", "life").returncode == 0
    after = cli("logs", "life", "app")
    assert after.returncode == 0, after.stderr
    assert "second-run" in after.stdout
    assert "no-config-found" not in after.stdout, "only the last run is kept"


def test_restart_gives_a_program_a_new_process_and_leaves_the_others_alone(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    first, second = (str(a) for a in spare_loopback(2))
    app = {"kind": "command", "address": first, "run": SERVE}
    other = {"kind": "command", "address": second, "run": SERVE}
    stub = {"kind": "tcp", "address": second}
    path = write_profile({"name": "life", "services": {"app": app, "other": other, "stub": stub}})
    assert cli("up", str(path), "-d").returncode == 0
    before = {s["name"]: s for s in cli.json("status", "life")["sandboxes"][0]["services"]}
    # A connection to `other`, opened before the restart, must survive it.
    held = socket.create_connection((second, before["other"]["port"]), timeout=5)
    try:
        done = cli("restart", "life", "app", "stub")
        assert done.returncode == 0, done.stderr
        assert "app restarted and ready" in done.stdout
        after = {s["name"]: s for s in cli.json("status", "life")["sandboxes"][0]["services"]}
        assert after["app"]["pid"] != before["app"]["pid"]
        assert after["other"]["pid"] == before["other"]["pid"]
        assert all(s["state"] == "ready" for s in after.values()), after
        held.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert held.recv(1024).startswith(b"HTTP/1.0 200")
    finally:
        held.close()
    assert cli("restart", "life", "nope").returncode == 2


def test_restart_of_a_sandbox_that_is_not_running_says_so(cli: Cli) -> None:
    done = cli("restart", "ghost")
    assert done.returncode == 2
    assert 'sandbox "ghost" is not running' in done.stderr


def test_plan_shows_a_worker_without_a_port_as_none(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    worker = {"kind": "command", "address": str(spare_loopback(1)[0]), "port": "none"}
    path = write_profile({"name": "life", "services": {"worker": {**worker, "run": "sleep 9"}}})
    done = cli("plan", str(path))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("worker"))
    assert row.split()[3:] == ["none", "-"]


def test_restart_reaches_a_foreground_up_too(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    path = write_profile(_profile(str(spare_loopback(1)[0])))
    proc = cli.popen("up", str(path))
    try:
        deadline = time.monotonic() + 20
        while cli("status", "life").returncode != 0:
            assert proc.poll() is None, "the foreground up stopped"
            assert time.monotonic() < deadline, "the foreground up never got ready"
            time.sleep(0.1)
        before = cli.json("status", "life")["sandboxes"][0]["services"][0]["pid"]
        done = cli("restart", "life", "app")
        assert done.returncode == 0, done.stderr
        after = cli.json("status", "life")["sandboxes"][0]["services"][0]
        assert after["pid"] != before
        assert after["state"] == "ready"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

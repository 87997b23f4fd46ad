"""A program's life, told truthfully: exits noticed through the process (not its pipes) within
a second, recorded in the state, shown by `status`, and restarted on failure."""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.proc.processes import descendants, is_alive, signal_ref
from sandbox.proc.ref import ProcessRef
from sandbox.runtime.sandbox import Sandbox
from sandbox.runtime.state import StateDir
from sandbox.runtime.status import sandbox_status
from tests.helpers import until as _until
from tests.runtime.conftest import StartSandbox

SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"
SERVE = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} {{address}} {{port}}"
NOTICED_WITHIN = 1.0  # seconds: the promise of docs/command-services.md


def _profile(address: str, **service: Any) -> dict[str, Any]:
    return {"name": "life", "services": {"app": {"kind": "command", "address": address,
                                                 "port": "auto", **service}}}  # fmt: skip


def _recorded(sb: Sandbox) -> dict[str, Any]:
    state = StateDir(sb._state.root, sb.name)  # type: ignore[union-attr]
    record = state.read()
    assert record is not None
    service = record.service("app")
    assert service is not None
    return service.to_json()


def _kill9(sb: Sandbox) -> None:
    running = sb.services["app"]
    assert running.pid is not None
    assert running.start_time is not None
    assert signal_ref(ProcessRef(running.pid, running.start_time), signal.SIGKILL)


def _log(sb: Sandbox) -> str:
    path = sb.services["app"].log_path
    assert path is not None
    return path.read_text()


async def test_an_exit_is_noticed_at_once_while_a_grandchild_holds_the_pipe(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    address = str(spare_loopback(1)[0])
    run = "sh -c " + shlex.quote(f"sleep 300 & exec {SERVE}")
    sb = await start_sandbox(_profile(address, run=run))
    assert _recorded(sb)["state"] == "ready"
    grandchild = descendants(sb.services["app"].pid or 0)
    assert grandchild, "the background sleep should hold the pipe"
    _kill9(sb)
    took = await _until(lambda: _recorded(sb)["state"] == "exited", "the exit to be recorded")
    assert took < NOTICED_WITHIN, f"the exit was noticed after {took:.2f} s"
    assert _recorded(sb)["exit_code"] == -signal.SIGKILL
    said = "[sandbox] the program was killed by SIGKILL"
    took = await _until(lambda: said in _log(sb), "the exit to be logged")
    assert took < NOTICED_WITHIN, f"the exit was logged after {took:.2f} s"
    assert is_alive(grandchild[0]), "the grandchild still holds the pipe: the point of the test"
    status = await sandbox_status(StateDir(sb._state.root, sb.name))  # type: ignore[union-attr]
    assert status is not None
    assert not status.ok
    shown = status.services[0].to_json()
    assert (shown["state"], shown["exit_code"]) == ("exited", -9)
    assert shown["detail"] == "exited (signal 9, SIGKILL)"


async def test_on_failure_restarts_a_killed_program_and_it_is_ready_again(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    address = str(spare_loopback(1)[0])
    run = "sh -c " + shlex.quote(f"sleep 300 & exec {SERVE}")
    sb = await start_sandbox(_profile(address, run=run, restart="on-failure", max_restarts=2))
    first = sb.services["app"].pid
    _kill9(sb)
    took = await _until(lambda: "restart 1 of 2" in _log(sb), "the restart to be scheduled")
    assert took < NOTICED_WITHIN, f"the exit was noticed after {took:.2f} s"
    await _until(lambda: _recorded(sb)["state"] == "ready", "ready again")
    shown = _recorded(sb)
    assert shown["restarts"] == 1
    assert shown["pid"] != first
    status = await sandbox_status(StateDir(sb._state.root, sb.name))  # type: ignore[union-attr]
    assert status is not None
    assert status.ok


async def test_a_program_that_used_up_its_restarts_has_given_up(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    address = str(spare_loopback(1)[0])
    sb = await start_sandbox(_profile(address, run=SERVE, restart="on-failure", max_restarts=0))
    _kill9(sb)
    await _until(lambda: _recorded(sb)["state"] == "gave up", "gave up")
    status = await sandbox_status(StateDir(sb._state.root, sb.name))  # type: ignore[union-attr]
    assert status is not None
    assert status.services[0].detail == "gave up (signal 9, SIGKILL)"


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid @TMP@/nginx.pid;
error_log stderr;
events { worker_connections 16; }
http {
    access_log off;
    client_body_temp_path @TMP@/body;
    proxy_temp_path @TMP@/proxy;
    fastcgi_temp_path @TMP@/fastcgi;
    uwsgi_temp_path @TMP@/uwsgi;
    scgi_temp_path @TMP@/scgi;
    server { listen @ADDRESS@:@PORT@; location / { return 200 "ok\\n"; } }
}
"""


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
async def test_nginx_master_killed_while_its_workers_live_on_is_noticed_and_restarted(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    address = str(spare_loopback(1)[0])
    conf = tmp_path / "nginx.conf.in"
    conf.write_text(NGINX_CONF.replace("@TMP@", str(tmp_path)))
    # The port is only known once planned: a tiny shell fills it into the config.
    folder = shlex.quote(str(tmp_path))
    script = (
        f"sed -e s/@ADDRESS@/$0/ -e s/@PORT@/$1/ {shlex.quote(str(conf))} > {folder}/nginx.conf"
        f" && exec nginx -e stderr -p {folder} -c {folder}/nginx.conf"
    )
    run = f"sh -c {shlex.quote(script)} {{address}} {{port}}"
    sb = await start_sandbox(_profile(address, run=run, restart="on-failure"))
    workers = descendants(sb.services["app"].pid or 0)
    assert workers, "nginx should have started a worker"
    _kill9(sb)
    took = await _until(lambda: "restart 1 of 3" in _log(sb), "the restart to be scheduled")
    assert took < NOTICED_WITHIN, f"the exit was noticed after {took:.2f} s"
    assert "[sandbox] the program was killed by SIGKILL" in _log(sb)
    await _until(
        lambda: _recorded(sb)["state"] == "ready",
        "nginx ready again",
        timeout=15,
        shown=lambda: f"; state {_recorded(sb)}; log:\n{_log(sb)}",
    )
    assert not any(is_alive(w) for w in workers), "the old workers were stopped before"

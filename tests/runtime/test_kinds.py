"""Readiness that matches real servers (`ready.command`), workers without a port, one-shot
jobs, and HTTP URLs for programs that speak HTTP."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import NotReadyError
from sandbox.runtime.state import StateDir
from sandbox.runtime.status import sandbox_status
from tests.runtime.conftest import StartSandbox

SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"
SERVE = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} {{address}} {{port}}"
PY = shlex.quote(sys.executable)


def _py(code: str) -> str:
    return f"{PY} -c {shlex.quote(code)}"


def _profile(address: str, **services: dict[str, Any]) -> dict[str, Any]:
    for spec in services.values():
        spec.setdefault("kind", "command")
        spec.setdefault("address", address)
    return {"name": "kinds", "services": services}


async def _status(sb: Any) -> dict[str, Any]:
    status = await sandbox_status(StateDir(sb._state.root, sb.name))
    assert status is not None
    out: dict[str, Any] = status.to_json()
    out["by_name"] = {s["name"]: s for s in out["services"]}  # type: ignore[attr-defined]
    return out


# -- ready.command -----------------------------------------------------------------------


async def test_ready_command_waits_until_its_output_matches(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    program = "sh -c " + shlex.quote(
        f"echo loading > {flag}; sleep 0.3; echo ready > {flag}; exec sleep 300"
    )
    check = _py(f"print(open({str(flag)!r}).read())")
    ready = {"command": check, "expect": "^ready", "interval": "50ms"}
    sb = await start_sandbox(
        _profile(str(spare_loopback(1)[0]), app={"run": program, "port": "none", "ready": ready})
    )
    assert flag.read_text() == "ready\n", "ready only once the check's output matched"
    assert (await _status(sb))["by_name"]["app"]["state"] == "ready"


async def test_a_ready_command_that_never_passes_fails_up_quoting_its_output(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    ready = {"command": "echo LOADING", "expect": "PONG", "timeout": "1s"}
    with pytest.raises(NotReadyError) as caught:
        await start_sandbox(_profile(str(spare_loopback(1)[0]), app={"run": SERVE, "ready": ready}))
    assert "did not match 'PONG': LOADING" in caught.value.message
    assert int(caught.value.exit_code) == 5


async def test_a_check_that_outlasts_its_attempt_deadline_is_killed_and_said(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    ready = {"command": "sleep 30", "attempt_timeout": "200ms", "timeout": "700ms"}
    with pytest.raises(NotReadyError) as caught:
        await start_sandbox(_profile(str(spare_loopback(1)[0]), app={"run": SERVE, "ready": ready}))
    assert "`sleep 30` did not finish within 0.2 s" in caught.value.message


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
async def test_redis_is_ready_when_redis_cli_ping_answers_pong(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    cache = {
        "run": 'redis-server --bind {address} --port {port} --save "" --appendonly no',
        "ready": {"command": "redis-cli -h {address} -p {port} ping", "expect": "PONG"},
    }
    sb = await start_sandbox(_profile(str(spare_loopback(1)[0]), cache=cache))
    running = sb.services["cache"]
    assert running.ready is not None
    assert "passed" in running.ready.detail
    assert (await _status(sb))["ok"] is True


# -- workers and jobs ----------------------------------------------------------------------


async def test_a_worker_without_a_port_is_ready_once_started_and_reserves_nothing(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    worker = {"run": _py("import time; print('working'); time.sleep(300)"), "port": "none"}
    sb = await start_sandbox(_profile(str(spare_loopback(1)[0]), worker=worker))
    shown = (await _status(sb))["by_name"]["worker"]
    assert (shown["state"], shown["port"], shown["url"], shown["probe"]) == ("ready", 0, "", None)


async def test_a_job_runs_to_completion_before_its_dependents_start(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    done = tmp_path / "migrated"
    migrate = {
        "run": _py(f"import time; time.sleep(0.2); open({str(done)!r}, 'w'); print('migrated')"),
        "job": True,
    }
    # The api exits 1 (and up fails) if it starts before the migration is done.
    script = shlex.quote(f'test -f {done} && exec "$0" "$@"')
    api = {"run": f"sh -c {script} {SERVE}", "depends_on": ["migrate"]}
    sb = await start_sandbox(_profile(str(spare_loopback(1)[0]), migrate=migrate, api=api))
    status = await _status(sb)
    job = status["by_name"]["migrate"]
    assert (job["state"], job["kind"], job["exit_code"], job["ok"]) == ("completed", "job", 0, True)
    assert status["ok"] is True
    assert status["by_name"]["api"]["state"] == "ready"


async def test_a_failed_job_fails_up_with_exit_5_and_its_output(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    migrate = {"run": _py("print('relation users exists'); raise SystemExit(3)"), "job": True}
    api = {"run": SERVE, "depends_on": ["migrate"]}
    with pytest.raises(NotReadyError) as caught:
        await start_sandbox(_profile(str(spare_loopback(1)[0]), migrate=migrate, api=api))
    message = caught.value.message
    assert "the job exited with code 3; its last output:" in message
    assert "relation users exists" in message
    assert int(caught.value.exit_code) == 5


# -- URLs -------------------------------------------------------------------------------------


async def test_a_program_probed_over_http_gets_an_http_url_everywhere(
    start_sandbox: StartSandbox, spare_loopback: Any
) -> None:
    api = {"run": SERVE, "ready": {"http": "/health"}}
    secure = {"run": SERVE, "scheme": "https"}
    show = _py(
        "import os, json; "
        "print(json.dumps([os.environ['SANDBOX_API_URL'], os.environ['SANDBOX_SECURE_URL']]))"
    )
    client = {"run": show, "job": True, "depends_on": ["api", "secure"]}
    sb = await start_sandbox(
        _profile(str(spare_loopback(1)[0]), api=api, secure=secure, client=client)
    )
    assert sb.url("api").startswith("http://")
    assert sb.url("secure").startswith("https://")
    log = sb.services["client"].log_path
    assert log is not None
    seen = json.loads(log.read_text().splitlines()[0].split(" ", 1)[1])
    assert seen == [sb.url("api"), sb.url("secure")]
    assert (await _status(sb))["by_name"]["api"]["url"] == sb.url("api")


async def test_restarting_a_job_runs_it_again_and_it_shows_completed(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    count = f"open({str(runs)!r}, 'a').write('x')"
    sb = await start_sandbox(
        _profile(str(spare_loopback(1)[0]), seed={"run": _py(count), "job": True})
    )
    results = await sb.restart(["seed"])
    assert results["seed"].ok
    assert runs.read_text() == "xx"
    assert (await _status(sb))["by_name"]["seed"]["state"] == "completed"


async def test_a_client_that_connects_before_a_stub_serves_is_served(
    spare_loopback: Any,
) -> None:
    """The readiness proof accepts its own connect on the stub's socket before the stub
    serves: a client already waiting in the queue is handed to the stub, not dropped."""
    from sandbox.net.sockets import bind_all
    from sandbox.profile.loader import load_profile_data
    from sandbox.runtime.sandbox import Sandbox

    web, db = (str(a) for a in spare_loopback(2))
    profile = load_profile_data(
        {
            "name": "early",
            "services": {
                "web": {"kind": "http", "address": web, "port": "auto"},
                "db": {
                    "kind": "tcp",
                    "address": db,
                    "port": "auto",
                    "tcp": {
                        "banner": "hello\r\n",
                        "rules": [{"expect": "PING", "send": "PONG\r\n"}],
                    },
                },
            },
        }
    )
    early: list[socket.socket] = []

    def bind_and_connect(requests: Any) -> list[socket.socket]:
        held = bind_all(requests)
        for sock in held:  # the control API's socket too: every one gets a waiting client
            early.append(socket.create_connection(sock.getsockname()[:2], timeout=5))
        return held

    sandbox = Sandbox(profile, bind=bind_and_connect, control_address=None)
    try:
        await sandbox.start()
        web_client, db_client = early

        def http_get() -> bytes:
            web_client.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            return b"".join(iter(lambda: web_client.recv(65536), b""))

        answer = await asyncio.to_thread(http_get)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]

        def tcp_talk() -> bytes:
            banner = db_client.recv(100)
            db_client.sendall(b"PING\r\n")
            return banner + db_client.recv(100)

        assert await asyncio.to_thread(tcp_talk) == b"hello\r\nPONG\r\n"
        for name in ("web", "db"):
            ready = sandbox.services[name].ready
            assert ready is not None
            assert ready.ok, ready.detail
    finally:
        for client in early:
            client.close()
        await sandbox.stop()

"""{data} kept across runs, {tmp} removed by down, two postgres-like servers on one port with
their own socket folders, logs that outlive the run, and capped log files."""

from __future__ import annotations

import asyncio
import shlex
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import NotReadyError
from sandbox.runtime.logwriter import LogWriter
from sandbox.runtime.manage import _LogFile, read_logs
from sandbox.runtime.state import STUBS_LOG, StateDir
from tests.netns import netns_json
from tests.runtime.conftest import StartSandbox

PY = shlex.quote(sys.executable)
SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"
SERVE = f"{PY} {shlex.quote(str(SERVER))} {{address}} {{port}}"

COUNT = (
    "import pathlib, sys; f = pathlib.Path(sys.argv[1]) / 'runs'; "
    "n = int(f.read_text()) + 1 if f.exists() else 1; f.write_text(str(n)); "
    "(pathlib.Path(sys.argv[2]) / 'scratch').write_text('x'); print('run', n)"
)


def _profile(address: str, **services: dict[str, Any]) -> dict[str, Any]:
    for spec in services.values():
        spec.setdefault("kind", "command")
        spec.setdefault("address", address)
    return {"name": "files", "services": services}


async def test_data_is_kept_across_runs_and_tmp_is_removed_by_down(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    job = {"run": f"{PY} -c {shlex.quote(COUNT)} {{data}} {{tmp}}", "job": True}
    profile = _profile(str(spare_loopback(1)[0]), count=job)
    first = await start_sandbox(profile)
    tmp = first.services["count"].program.ctx.tmp_dir  # type: ignore[union-attr]
    assert tmp is not None
    assert (tmp / "scratch").exists()
    await first.stop()
    assert not tmp.exists(), "{tmp} goes with the run"
    second = await start_sandbox(profile)
    data = StateDir(tmp_path / "state", "files").data_dir("count")
    assert (data / "runs").read_text() == "2", "{data} outlived the first run"
    await second.stop()


async def test_logs_outlive_the_run_and_a_failed_up(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    address = str(spare_loopback(1)[0])
    sb = await start_sandbox(_profile(address, app={"run": f"{SERVE} --say hello-from-app"}))
    await sb.stop()
    state = StateDir(tmp_path / "state", "files")
    assert state.read() is None
    kept = state.last_run()
    assert kept is not None
    record, folder = kept
    assert [s.name for s in record.services] == ["app"]
    assert "hello-from-app" in (folder / "app.log").read_text()
    failing = {"run": f"{SERVE} --say broken-config --exit 2"}
    with pytest.raises(NotReadyError):
        await start_sandbox(_profile(address, app=failing))
    kept = state.last_run()
    assert kept is not None
    log = (kept[1] / "app.log").read_text()
    assert "broken-config" in log, "the failed run's log replaced the one before"
    assert "hello-from-app" not in log


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bytes(answer.read())


async def test_logs_of_a_stub_outlive_the_run_in_the_shared_log(
    start_sandbox: StartSandbox, spare_loopback: Any, tmp_path: Path
) -> None:
    address = str(spare_loopback(1)[0])
    app = {"run": f"{SERVE} --say hello-from-app"}
    stub = {
        "kind": "http",
        "address": address,
        "routes": [{"path": "/hi", "response": {"body": "hi"}}],
    }
    sb = await start_sandbox(_profile(address, app=app, api=stub))
    assert await asyncio.to_thread(_get, sb.url("api") + "/hi") == b"hi"
    await sb.stop()
    root = tmp_path / "state"
    api = list(read_logs(root, "files", "api", tail=50, follow=False))
    assert any("/hi" in line for _, line in api), api
    assert {svc for svc, _ in api} == {"api"}
    assert not any(line.startswith("api ") for _, line in api), "the tag is taken out"
    own = list(read_logs(root, "files", "app", tail=50, follow=False))
    assert any("hello-from-app" in line for _, line in own), own
    assert not any("/hi" in line for _, line in own)


def test_a_full_log_is_rotated_once(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "app.log"
    shared = tmp_path / "logs" / STUBS_LOG
    logs = LogWriter(limit=100)
    own, stub = logs.open(path), logs.open(shared, "api")
    try:
        for n in range(30):
            own(f"request {n:02d} ........")
            stub(f"request {n:02d} ........")
            logs.flush(wait=n % 7 == 0)  # rotation both within a batch and across batches
    finally:
        logs.close()
    for log in (path, shared):
        rotated = log.with_name(log.name + ".1")
        assert log.stat().st_size <= 100
        assert rotated.stat().st_size <= 100
        assert "request 29" in log.read_text()
        assert "request 2" in rotated.read_text()
        assert not log.with_name(log.name + ".2").exists()
    assert " api request 29" in shared.read_text()


# Two postgres-like servers at port 5432 on two addresses, each with its unix socket in its
# own {tmp}: the fixed port needs a private network namespace.
_PG = """
import asyncio, json, os, sys, tempfile
from sandbox.profile.loader import load_profile_data
from sandbox.runtime.sandbox import Sandbox

fake = (
    "import socket, sys, time, os; a, p, d = sys.argv[1:4]; "
    "u = socket.socket(socket.AF_UNIX); u.bind(os.path.join(d, '.s.PGSQL.' + p)); u.listen(); "
    "t = socket.socket(); t.bind((a, int(p))); t.listen(); print('ready', flush=True); "
    "time.sleep(300)"
)
run = sys.executable + " -c " + repr(fake) + " {address} {port} {tmp}"
spec = {"kind": "command", "port": 5432, "run": run, "ready": {"log": "ready"}}
profile = load_profile_data({"name": "pg", "services": {
    "db1": {**spec, "address": "127.0.0.2"}, "db2": {**spec, "address": "127.0.0.3"}}})

async def main():
    root = tempfile.mkdtemp()
    async with Sandbox(profile, state_root=__import__("pathlib").Path(root)) as sb:
        socks = [str(sb.services[n].program.ctx.tmp_dir) + "/.s.PGSQL.5432" for n in ("db1", "db2")]
        return {"sockets": socks, "exist": [os.path.exists(s) for s in socks]}

print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.netns
def test_two_postgres_like_servers_on_one_port_keep_their_sockets_apart() -> None:
    out = netns_json(_PG, timeout=30)
    first, second = out["sockets"]
    assert first != second
    assert out["exist"] == [True, True]


def test_following_a_log_reads_on_across_its_rotation(tmp_path: Path) -> None:
    # `sandbox logs -f` reads the rest of the full file, then the new one: no line is lost.
    path = tmp_path / "logs" / "app.log"
    logs = LogWriter(limit=200)
    write = logs.open(path)
    seen: list[str] = []
    try:
        write("line 00 ..........")
        logs.flush(wait=True)
        follower = _LogFile(path, shared=False)
        seen += follower.backlog("app")
        for n in range(1, 40):
            write(f"line {n:02d} ..........")
            logs.flush(wait=n % 5 == 0)
            if n % 5 == 0:
                seen += [line for _, line in follower.new_lines()]
        logs.flush(wait=True)
        seen += [line for _, line in follower.new_lines()]
        follower.close()
    finally:
        logs.close()
    assert path.with_name("app.log.1").exists(), "the log should have been rotated"
    assert [line.split()[-2] for line in seen] == [f"{n:02d}" for n in range(40)]


def test_a_line_still_being_written_is_held_back(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("12:00:00 first\n12:00:01 sec")
    follower = _LogFile(path, shared=False)
    try:
        assert follower.backlog("app") == ["12:00:00 first"]
        with path.open("a") as out:
            out.write("ond half\n12:00:02 third\n")
        assert follower.new_lines() == [("app", "12:00:01 second half"), ("app", "12:00:02 third")]
    finally:
        follower.close()
    # Read once and for all (no -f), a last line cut short is still shown.
    once = _LogFile(path, shared=False)
    try:
        path.write_text("12:00:00 first\n12:00:01 cut sh")
        assert once.backlog("app", whole=True) == ["12:00:00 first", "12:00:01 cut sh"]
    finally:
        once.close()

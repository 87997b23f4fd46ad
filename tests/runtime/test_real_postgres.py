"""A real PostgreSQL as a command service: made by initdb on the first run, ready when
pg_isready says so, queried by psql on its loopback address, and gone after `stop`.

The server refuses to run as root, so where the tests run as root (CI does) it runs as the
`postgres` user (or `nobody`) through `setpriv`, which execs it: the supervised process is
still the server itself. Skips where PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import StartSandbox


def _server_bin() -> Path | None:
    """The folder of `postgres` and `initdb`: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("postgres")
    candidates = [Path(found).parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "postgres").exists() and (folder / "initdb").exists():
            return folder
    return None


def _client(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    folder = _server_bin()
    return str(folder / name) if folder and (folder / name).exists() else None


BIN = _server_bin()
PSQL, PG_ISREADY = _client("psql"), _client("pg_isready")
ROOT = os.geteuid() == 0
pytestmark = [
    pytest.mark.skipif(BIN is None, reason="PostgreSQL (postgres, initdb) is not installed"),
    pytest.mark.skipif(PSQL is None or PG_ISREADY is None, reason="psql/pg_isready missing"),
    pytest.mark.skipif(ROOT and shutil.which("setpriv") is None, reason="root without setpriv"),
]


def _run_as() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root: postgres, or nobody."""
    if not ROOT:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.skip("running as root, and there is no postgres or nobody user to run the server as")


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A folder for the cluster and its socket that the server's user may write: outside
    pytest's own temporary folders, which only their owner may enter."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-pg-"))
    user = _run_as()
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _db_service(folder: Path) -> dict[str, Any]:
    assert BIN is not None
    data, sock = folder / "data", folder
    script = (
        f"test -f {data}/PG_VERSION || {BIN}/initdb -D {data} -U app -A trust -N >/dev/null; "
        f"exec {BIN}/postgres -D {data} -h {{address}} -p {{port}} -k {sock}"
    )
    user = _run_as()
    prefix = ""
    if user is not None:
        prefix = f"setpriv --reuid={user.pw_uid} --regid={user.pw_gid} --init-groups -- "
    return {
        "kind": "command",
        "run": f"{prefix}sh -c {shlex.quote(script)}",
        "ready": {
            "command": f"{PG_ISREADY} -h {{address}} -p {{port}}",
            "expect": "accepting connections",
            "timeout": "60s",
        },
    }


def _psql(address: str, port: int, sql: str) -> str:
    assert PSQL is not None
    done = subprocess.run(
        [PSQL, "-h", address, "-p", str(port), "-U", "app", "-d", "postgres", "-w", "-Atc", sql],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _refused(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2.0)
        return probe.connect_ex((address, port)) != 0


async def test_postgres_starts_answers_psql_on_its_address_and_stops(
    start_sandbox: StartSandbox, spare_loopback: Any, pg_dir: Path
) -> None:
    address = str(spare_loopback(1)[0])
    profile = {"name": "pg", "services": {"db": {**_db_service(pg_dir), "address": address}}}
    sb = await start_sandbox(profile, wait_timeout=90.0)
    db = sb.services["db"]
    assert db.ready is not None
    assert "passed" in db.ready.detail
    port = db.port
    assert _psql(address, port, "select 40 + 2") == "42"
    # It listens on its own address only: the same port on 127.0.0.1 refuses.
    assert address == "127.0.0.1" or _refused("127.0.0.1", port)
    # A table made now is there after a restart of the sandbox: {data} is kept.
    _psql(address, port, "create table kept (n int); insert into kept values (7)")
    await sb.stop()
    assert _refused(address, port)
    again = await start_sandbox(profile, wait_timeout=90.0)
    assert _psql(address, again.services["db"].port, "select n from kept") == "7"

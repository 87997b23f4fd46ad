"""Start-up of 50 stubs: the API in a fresh interpreter, the bare aiohttp control, the CLI.

Each case is a generator that does one run per `next()` and returns its rows at the end,
so bench/run.py can interleave the cases run by run: on a shared machine a burst of load
from elsewhere then hits every case alike instead of one of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from common import (
    BENCH_DIR,
    STUBS,
    Row,
    child_json,
    common_free_port,
    planned_addresses,
    port_free_on_all,
    ref,
    sandbox_cmd,
    still_open,
    stubs_profile,
    timed_run,
)

Case = Generator[None, None, list[Row]]


def _port_for(addresses: list[str], port: int | None) -> int:
    """Keep `port` while it stays free on every address; otherwise pick another."""
    if port is not None and port_free_on_all(addresses, port):
        return port
    return common_free_port(addresses)


# -- 1a. the API, in a fresh interpreter per run ---------------------------------------------


def api_start(runs: int, warm_runs: int) -> Case:
    """`async with sandbox.start(dict)` for 50 stubs: cold (first in a process) and warm."""
    addresses = planned_addresses(stubs_profile("bench50api", STUBS, 1))
    port: int | None = None
    results = []
    for _ in range(runs):
        port = _port_for(addresses, port)
        cmd = [sys.executable, str(BENCH_DIR / "child_start.py"), repr(time.time())]
        result = child_json([*cmd, str(port), str(STUBS), str(warm_runs)])
        if result["answered"] != STUBS:
            raise RuntimeError(f"only {result['answered']} of {STUBS} stubs answered GET /")
        results.append(result)
        yield
    where = f"port {port} on all {STUBS} addresses {addresses[0]}..{addresses[-1]}"
    return [
        Row(
            "api_launch",
            "API: fresh interpreter launch -> 50 ready",
            [r["launch_to_ready_s"] for r in results],
            "s",
            **ref("start_s"),
            control="bare_launch",
            note="bench/child_start.py: `python` starts, imports sandbox, enters "
            "`async with sandbox.start(profile_dict)`; the figure comparable with a script's",
        ),
        Row(
            "api_cold",
            "API: start() call -> return, first in the process",
            [r["cold_start_s"] for r in results],
            "s",
            **ref("start_s"),
            note=f"includes validating the dict and the lazy import of aiohttp; {where}",
        ),
        Row(
            "api_warm",
            "API: start() call -> return, warm",
            [v for r in results for v in r["warm_start_s"]],
            "s",
            **ref("start_s"),
            note=f"later start()s in the same process ({warm_runs} per process)",
        ),
        Row(
            "api_no_table",
            "API: start(), warm, socket table not read",
            [v for r in results for v in r["no_table_s"]],
            "s",
            note="`Sandbox(profile, table_reader=list)`: the difference with the warm row is "
            "the conflict check's read of the machine's socket table (psutil.net_connections)",
        ),
        Row(
            "api_import",
            "API: `import sandbox.api`",
            [r["import_s"] for r in results],
            "s",
            note="pydantic, psutil and the profile models; aiohttp comes later, in start()",
        ),
        Row(
            "api_stop",
            "API: stop (leaving the `async with`)",
            [v for r in results for v in r["stop_s"]],
            "s",
        ),
        Row(
            "api_rss",
            "API: RSS of the process with 50 stubs up",
            [r["rss_mib"] for r in results],
            "MiB",
            **ref("rss_mib"),
            control="bare_rss",
        ),
    ]


# -- control: a bare aiohttp script on this machine -------------------------------------------


def bare_start(runs: int) -> Case:
    """The reference's bare aiohttp script, re-measured here: launch -> 50 sites listening."""
    addresses = planned_addresses(stubs_profile("bench50bare", STUBS, 1))
    port: int | None = None
    results = []
    for _ in range(runs):
        port = _port_for(addresses, port)
        cmd = [sys.executable, str(BENCH_DIR / "bare_aiohttp.py"), repr(time.time()), str(port)]
        results.append(child_json([*cmd, *addresses]))
        yield
    return [
        Row(
            "bare_launch",
            "control: bare aiohttp, launch -> 50 listening",
            [r["launch_to_ready_s"] for r in results],
            "s",
            **ref("start_s"),
            note="bench/bare_aiohttp.py: one app, 50 TCPSites on the same 50 addresses and "
            "one port, no probing",
        ),
        Row(
            "bare_rss",
            "control: bare aiohttp RSS, 50 sites",
            [r["rss_mib"] for r in results],
            "MiB",
            **ref("rss_mib"),
        ),
    ]


# -- 1b, 2, 5. the CLI: up -d, status, down ---------------------------------------------------


@contextmanager
def state_env(**extra: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A private temp dir and SANDBOX_STATE_DIR (and `extra` variables); whatever is still
    up there is downed on exit."""
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "SANDBOX_STATE_DIR": str(root / "state"), **extra}
        try:
            yield root, env
        finally:
            subprocess.run(
                [*sandbox_cmd(), "down", "--all", "--grace", "2"],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )


def check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    """Raise RuntimeError with the command's stderr when it failed."""
    if proc.returncode != 0:
        raise RuntimeError(f"`sandbox {what}` exited {proc.returncode}: {proc.stderr.strip()}")


def check_json(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    check(proc, what)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _supervisor_alone(
    path: Path, name: str, state_root: Path
) -> tuple[float, subprocess.Popen[bytes]]:
    """Launch the detached supervisor as `up -d` does, minus the CLI: seconds to its ready line.

    Uses the supervisor's internal command line (`python -m sandbox.runtime.supervisor`).
    """
    read_fd, write_fd = os.pipe()
    cmd = [
        sys.executable, "-m", "sandbox.runtime.supervisor", "--profile", str(path),
        "--name", name, "--state-root", str(state_root), "--ready-fd", str(write_fd),
    ]  # fmt: skip
    t0 = time.perf_counter()
    child = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_fd,),
        start_new_session=True,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        line = pipe.readline()  # EOF if it dies; it gives up by itself after --wait-timeout
        while line.startswith(b'{"progress"'):  # one per service ready, before the ready line
            line = pipe.readline()
    took = time.perf_counter() - t0
    if not line or not json.loads(line).get("ok"):
        child.kill()
        child.wait()
        raise RuntimeError(f"the supervisor did not report ready: {line!r}")
    return took, child


def cli_up_down(runs: int) -> Case:
    """`sandbox up FILE -d`, `status --json` (the supervisor's RSS), `down`; and their parts."""
    import psutil

    sandbox = sandbox_cmd()
    name = "bench50"
    addresses = planned_addresses(stubs_profile(name, STUBS, 1))
    port: int | None = None
    got: dict[str, list[float]] = {}
    with state_env() as (root, env):
        path = root / f"{name}.yaml"
        for _ in range(runs):
            chosen = _port_for(addresses, port)
            if chosen != port:
                port = chosen
                path.write_text(yaml.safe_dump(stubs_profile(name, STUBS, port)))
            took, proc = timed_run([*sandbox, "up", str(path), "-d", "--json"], env=env)
            check(proc, "up")
            got.setdefault("up", []).append(took)

            took, proc = timed_run([*sandbox, "status", name, "--json"], env=env)
            found = check_json(proc, "status")["sandboxes"][0]
            got.setdefault("status", []).append(took)
            reachable = sum(1 for s in found["services"] if s["reachable"])
            if reachable != STUBS or found["state"] != "running":
                raise RuntimeError(f"{reachable} of {STUBS} reachable, state {found['state']}")
            pid = int(found["supervisor_pid"])
            got.setdefault("rss", []).append(psutil.Process(pid).memory_info().rss / 2**20)

            took, proc = timed_run([*sandbox, "down", name, "--json"], env=env)
            report = check_json(proc, "down")["sandboxes"][0]
            t0 = time.perf_counter()
            left = still_open(addresses, port)
            if left or _alive(pid) or not report["clean"]:
                raise RuntimeError(f"not clean after down: open {left}, report {report}")
            got.setdefault("down", []).append(took)
            got.setdefault("clean", []).append(took + time.perf_counter() - t0)
            got.setdefault("reported", []).append(float(report["seconds"]))

            took, proc = timed_run([*sandbox, "validate", str(path)], env=env)
            check(proc, "validate")
            got.setdefault("validate", []).append(took)
            took, child = _supervisor_alone(path, name, Path(env["SANDBOX_STATE_DIR"]))
            got.setdefault("supervisor", []).append(took)
            try:
                check(timed_run([*sandbox, "down", name], env=env)[1], "down")
            finally:
                child.wait(timeout=15)
            yield
    return _cli_rows(got, f"port {port} on all {STUBS} addresses")


def _cli_rows(got: dict[str, list[float]], where: str) -> list[Row]:
    return [
        Row(
            "cli_up",
            "CLI: `sandbox up FILE -d` (returns when all are ready)",
            got["up"],
            "s",
            **ref("start_s"),
            control="bare_launch",
            note=f"{where}; the YAML in a temp dir, SANDBOX_STATE_DIR a temp dir",
        ),
        Row(
            "cli_validate",
            "… its CLI side alone: `sandbox validate FILE`",
            got["validate"],
            "s",
            note="approximates what `up` does before it spawns the supervisor: start the CLI, "
            "import, read the YAML, validate 50 services",
        ),
        Row(
            "supervisor",
            "… its supervisor alone: launch -> ready line",
            got["supervisor"],
            "s",
            **ref("start_s"),
            control="bare_launch",
            note="`python -m sandbox.runtime.supervisor` launched directly, as `up -d` does",
        ),
        Row("cli_status", "CLI: `sandbox status NAME --json` (50 live probes)", got["status"], "s"),
        Row(
            "sup_rss",
            "CLI: supervisor RSS with 50 stubs up",
            got["rss"],
            "MiB",
            **ref("rss_mib"),
            control="bare_rss",
            note="psutil on `supervisor_pid` from `status --json`",
        ),
        Row("cli_down", "down: `sandbox down NAME` wall", got["down"], "s"),
        Row(
            "down_reported",
            "down: the `seconds` it reports itself",
            got["reported"],
            "s",
            note="`down --json`: SIGTERM -> supervisor gone -> all 50 ports refuse",
        ),
        Row(
            "down_clean",
            "down: `sandbox down` -> verified clean",
            got["clean"],
            "s",
            note="down's wall time plus an independent check: the supervisor is gone and "
            "all 50 ports refuse",
        ),
    ]

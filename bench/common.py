"""Shared helpers of the benchmarks: the 50-stub profile, a port free on every address, stats."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
POOL = "127.77.0.0/16"  # the fixed pool the brief asks for; every stub gets one address of it
STUBS = 50

# FIELD-NOTES.md, "Numbers to beat" (same machine, medians, 2 cores).
REFERENCE = {
    "start_s": (0.23, "bare aiohttp 0.23 s"),
    "start_mountebank_s": (0.51, "mountebank 0.51 s"),
    "start_mockoon_s": (0.87, "Mockoon 0.87 s"),
    "rss_mib": (36.0, "bare aiohttp 36 MiB"),
    "rps": (23_700.0, "bare aiohttp 23.7k req/s"),
    "p99_ms": (3.5, "bare aiohttp p99 3.5 ms"),
}


def ref(key: str) -> dict[str, Any]:
    """The reference of `key` as Row keyword arguments."""
    value, label = REFERENCE[key]
    return {"ref": value, "ref_label": label}


@dataclass
class Row:
    """One line of the results table: a measured quantity and what it is compared with."""

    key: str
    label: str
    values: list[float]
    unit: str  # "s", "ms", "MiB", "req/s"
    ref: float | None = None
    ref_label: str = ""
    higher_is_better: bool = False
    control: str | None = None  # the key of the row measuring the same thing bare, here
    note: str = ""
    failed: str = ""  # why there is no figure (e.g. the case did not start)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


def use_bytecode_cache() -> str:
    """Let every child cache its bytecode, in a folder of ours; says what was done.

    Users' interpreters write .pyc files; an environment with PYTHONDONTWRITEBYTECODE=1
    would make every child compile the package from source, a cost users never pay. The
    cache goes under the temp dir (PYTHONPYCACHEPREFIX), so nothing is written in the repo.
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return "the interpreter's own (.pyc next to the sources)"
    prefix = Path(tempfile.gettempdir()) / f"sandbox-bench-pycache-{os.getuid()}"
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    return f"PYTHONPYCACHEPREFIX={prefix} (the environment had PYTHONDONTWRITEBYTECODE=1)"


def warm_bytecode() -> None:
    """Import everything the children import once, so no measured run compiles anything."""
    modules = (
        "sandbox.api, sandbox.cli, sandbox.runtime.manage, sandbox.profile.loader, "
        "sandbox.services.http, sandbox.services.tcp, sandbox.runtime.supervisor, "
        "aiohttp.web, jinja2.sandbox, psutil, yaml, typer"
    )
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True, cwd=REPO_DIR)
    subprocess.run([*sandbox_cmd(), "--help"], check=True, capture_output=True)


def sandbox_cmd() -> list[str]:
    """The `sandbox` console script next to this interpreter, else `python -m sandbox`."""
    script = Path(sys.executable).parent / "sandbox"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sandbox"]


def stubs_profile(name: str, count: int, port: int | str, pool: str = POOL) -> dict[str, Any]:
    """A profile dict (as the YAML would be) of `count` HTTP stubs, all `address: auto`."""
    # A new route dict per service: shared ones would be dumped as YAML aliases, which a
    # profile may use only so much (profile limits), and a hand-written profile has none.
    services = {
        f"s{i:02d}": {
            "kind": "http",
            "address": "auto",
            "port": port,
            "routes": [{"path": "/", "response": {"body": "ok"}}],
        }
        for i in range(count)
    }
    return {"name": name, "pool": pool, "services": services}


def planned_addresses(profile: dict[str, Any]) -> list[str]:
    """The addresses the product's own planner gives the services of `profile`, in order."""
    from sandbox.api import load
    from sandbox.plan import make_plan

    plan = make_plan(load(profile))
    by_name = {s.name: str(s.address) for s in plan.services}
    return [by_name[name] for name in profile["services"]]


def _probe_bind(address: str, port: int) -> socket.socket:
    # SO_REUSEADDR like the product's own bind: a TIME_WAIT left by the previous run does
    # not count as taken, a listener does.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def port_free_on_all(addresses: Sequence[str], port: int) -> bool:
    """Whether `port` can be bound on every address right now (checked, then released)."""
    held: list[socket.socket] = []
    try:
        for address in addresses:
            held.append(_probe_bind(address, port))
    except OSError:
        return False
    finally:
        for sock in held:
            sock.close()
    return True


def common_free_port(addresses: Sequence[str], attempts: int = 50) -> int:
    """One port free on every address: the kernel picks it on the first, the rest must agree.

    Raises RuntimeError when `attempts` candidates all failed.
    """
    for _ in range(attempts):
        first = _probe_bind(addresses[0], 0)
        port = int(first.getsockname()[1])
        first.close()
        if port_free_on_all(addresses, port):
            return port
    raise RuntimeError(f"no port was free on all {len(addresses)} addresses")


def still_open(addresses: Sequence[str], port: int, timeout: float = 0.5) -> list[str]:
    """The addresses where something still accepts connections on `port`."""
    left = []
    for address in addresses:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                left.append(address)
        except OSError:
            pass
    return left


def timed_run(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `cmd` to completion; (wall seconds, the completed process)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(cmd), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return time.perf_counter() - t0, proc


def child_json(cmd: Sequence[str], *, timeout: float = 60.0) -> dict[str, Any]:
    """Run a bench child script and return the JSON object on its last stdout line."""
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_DIR
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def vmrss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process from /proc, in MiB (no psutil needed in children)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0] if text else None


def _uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "not installed: detached supervisors run on asyncio's loop"
    return f"{uvloop.__version__}: detached supervisors run on it (SANDBOX_UVLOOP=0 turns it off)"


def machine() -> dict[str, str]:
    """What the figures depend on: cores, CPU, kernel, Python, aiohttp, load, wrk."""
    import aiohttp

    load = os.getloadavg()
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": _uvloop(),
        "loadavg": " ".join(f"{x:.2f}" for x in load),
        "wrk": _version(["wrk", "--version"]) or "not installed",
    }

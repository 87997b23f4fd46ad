"""One HTTP stub under load: detached (`up -d`), in-process (API), and bare aiohttp.

All three serve at once (idle until loaded) and are loaded in turn, round by round, so
that load from elsewhere on a shared machine hits them alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import yaml
from common import BENCH_DIR, POOL, REPO_DIR, Row, planned_addresses, ref, sandbox_cmd, timed_run
from loadgen import LoadResult, run_load
from startup import check_json, state_env


@contextmanager
def _serving(cmd: list[str], first_line: str = "", **env: str) -> Iterator[dict[str, Any]]:
    """A child that prints one JSON line when ready and serves until its stdin closes."""
    child = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_DIR,
        env={**os.environ, **env},
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        if first_line:
            child.stdin.write(first_line + "\n")
            child.stdin.flush()
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"{' '.join(cmd[:2])} exited before it was ready")
        yield json.loads(line)
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def _detached(profile: dict[str, Any]) -> Iterator[str]:
    """The profile up with `sandbox up -d` in a temp state dir; yields the stub's URL."""
    with state_env() as (root, env):
        path = root / "bench1.yaml"
        path.write_text(yaml.safe_dump(profile))
        _, proc = timed_run([*sandbox_cmd(), "up", str(path), "-d", "--json"], env=env)
        yield check_json(proc, "up")["services"][0]["url"] + "/"
        # state_env() downs it on the way out


def _rows(key: str, label: str, results: list[LoadResult], note: str, bare: bool) -> list[Row]:
    tool = results[0].tool
    control = {} if bare else {"control": "bare_rps"}
    return [
        Row(
            f"{key}_rps",
            f"{label}: req/s ({tool})",
            [r.rps for r in results],
            "req/s",
            **ref("rps"),
            higher_is_better=True,
            note=note,
            **control,
        ),
        Row(
            f"{key}_p99",
            f"{label}: p99 latency ({tool})",
            [r.p99_ms for r in results if r.p99_ms is not None],
            "ms",
            **ref("p99_ms"),
            control=None if bare else "bare_p99",
        ),
    ]


def one_stub_load(duration: float, runs: int, tool: str) -> list[Row]:
    """req/s and p99 of `GET /` -> 200 `ok`, each server loaded `runs` times, in turn."""
    route = {"method": "GET", "path": "/", "response": {"body": "ok"}}
    service = {"kind": "http", "address": "auto", "port": "auto", "routes": [route]}
    profile = {"name": "bench1", "pool": POOL, "services": {"hello": service}}
    address = planned_addresses(profile)[0]
    bare_cmd = [sys.executable, str(BENCH_DIR / "bare_aiohttp.py"), repr(time.time()), "0"]
    with ExitStack() as stack:
        urls = {
            "stub": stack.enter_context(_detached(profile)),
            "api_stub": stack.enter_context(
                _serving([sys.executable, str(BENCH_DIR / "serve_stub.py")], json.dumps(profile))
            )["url"]
            + "/",
        }
        # All three share the profile's first address, each on a port the kernel picked.
        ready = stack.enter_context(_serving([*bare_cmd, address], BARE_SERVE="1"))
        urls["bare"] = f"http://{address}:{ready['ports'][0]}/"
        results: dict[str, list[LoadResult]] = {key: [] for key in urls}
        for url in urls.values():
            run_load(url, duration=1.0, tool=tool)  # warm-up, not recorded
        for _ in range(runs):
            for key, url in urls.items():
                result = run_load(url, duration=duration, tool=tool)
                if result.non_2xx or result.errors:
                    raise RuntimeError(f"{url}: {result.non_2xx} non-2xx, {result.errors} errors")
                results[key].append(result)
    return [
        *_rows(
            "stub",
            "one stub, `sandbox up -d`",
            results["stub"],
            f"GET {urls['stub']} -> 200 `ok`; the supervisor logs each request to the "
            "service's log and to its own log",
            bare=False,
        ),
        *_rows(
            "api_stub",
            "one stub, in-process API",
            results["api_stub"],
            "bench/serve_stub.py: `sandbox.start(profile)` without a state dir: no log file",
            bare=False,
        ),
        *_rows(
            "bare",
            "control: bare aiohttp",
            results["bare"],
            "bench/bare_aiohttp.py: one handler returning `ok`",
            bare=True,
        ),
    ]

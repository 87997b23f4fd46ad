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
def _detached(profile: dict[str, Any], **extra: str) -> Iterator[dict[str, Any]]:
    """The profile up with `sandbox up -d` in a temp state dir; yields `up --json`."""
    with state_env(**extra) as (root, env):
        path = root / f"{profile['name']}.yaml"
        path.write_text(yaml.safe_dump(profile))
        _, proc = timed_run([*sandbox_cmd(), "up", str(path), "-d", "--json"], env=env, timeout=120)
        yield check_json(proc, "up")
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


def _matcher_routes() -> list[dict[str, Any]]:
    """20 routes on one path, told apart by a query and a header regex; the 20th answers."""
    return [
        {
            "method": "GET",
            "path": "/items/{id}",
            "match": {"query": {"kind": f"^k{i}$"}, "headers": {"host": "^127\\."}},
            "response": {"body": f"route {i}"},
        }
        for i in range(20)
    ]


def mixed_profile() -> dict[str, Any]:
    """The detached sandbox under load: a plain stub, 20 matchers, a template, a proxy."""

    def http(routes: list[dict[str, Any]]) -> dict[str, Any]:
        return {"kind": "http", "address": "auto", "port": "auto", "routes": routes}

    plain = {"method": "GET", "path": "/", "response": {"body": "ok"}}
    template = {
        "method": "GET",
        "path": "/hello/{name}",
        "response": {"body": "hello {{ path.name }}"},
    }
    services = {
        "hello": http([plain]),
        "matchers": http(_matcher_routes()),
        "template": http([template]),
        "proxy": http([{"path": "/{tail:.*}", "proxy": "hello"}]),
    }
    return {"name": "bench1", "pool": POOL, "services": services}


# (key, label, path on the service, what it shows)
_DETACHED = (
    ("stub", "one stub, `sandbox up -d`", "/", "GET / -> 200 `ok`; the supervisor logs each "
     "request to the service's log (on uvloop when it is installed, the default)"),
    ("matchers", "20 routes with matchers, `up -d`", "/items/42?kind=k19", "20 routes on "
     "`/items/{id}`, each with a query and a header regex; the 20th matches"),
    ("template", "a template route, `up -d`", "/hello/world", "body `hello {{ path.name }}`"),
    ("proxy", "a proxy route (stub to stub), `up -d`", "/", "`proxy: hello`: every request "
     "is forwarded to the plain stub of the same sandbox"),
)  # fmt: skip


def have_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def one_stub_load(duration: float, runs: int, tool: str) -> list[Row]:
    """req/s and p99 of each server, each loaded `runs` times, in turn, round by round."""
    profile = mixed_profile()
    single = {**profile, "services": {"hello": profile["services"]["hello"]}}
    address = planned_addresses(profile)[0]
    bare_cmd = [sys.executable, str(BENCH_DIR / "bare_aiohttp.py"), repr(time.time()), "0"]
    with ExitStack() as stack:
        status = stack.enter_context(_detached(profile))
        by_name = {s["name"]: s["url"] for s in status["services"]}
        urls = {
            key: by_name[name] + path
            for (key, _, path, _), name in zip(
                _DETACHED, ("hello", "matchers", "template", "proxy"), strict=True
            )
        }
        serve = [sys.executable, str(BENCH_DIR / "serve_stub.py")]
        urls["api_stub"] = stack.enter_context(_serving(serve, json.dumps(single)))["url"] + "/"
        if have_uvloop():  # the supervisor above runs on it: the same stub on asyncio's loop
            plain = {**single, "name": "bench1asyncio"}
            up = stack.enter_context(_detached(plain, SANDBOX_UVLOOP="0"))
            urls["stub_asyncio"] = up["services"][0]["url"] + "/"
            urls["api_stub_uvloop"] = (
                stack.enter_context(_serving(serve, json.dumps(single), BENCH_UVLOOP="1"))["url"]
                + "/"
            )
        # The controls share the profile's first address, each on a port the kernel picked.
        ready = stack.enter_context(_serving([*bare_cmd, address], BARE_SERVE="1"))
        urls["bare"] = f"http://{address}:{ready['ports'][0]}/"
        proxied = stack.enter_context(
            _serving([*bare_cmd, address], BARE_SERVE="1", BARE_UPSTREAM=urls["bare"][:-1])
        )
        urls["bare_proxy"] = f"http://{address}:{proxied['ports'][0]}/"
        results: dict[str, list[LoadResult]] = {key: [] for key in urls}
        for url in urls.values():
            run_load(url, duration=1.0, tool=tool)  # warm-up, not recorded
        for _ in range(runs):
            for key, url in urls.items():
                result = run_load(url, duration=duration, tool=tool)
                if result.non_2xx or result.errors:
                    raise RuntimeError(f"{url}: {result.non_2xx} non-2xx, {result.errors} errors")
                results[key].append(result)
    rows: list[Row] = []
    for key, label, _, what in _DETACHED:
        rows += _rows(key, label, results[key], f"GET {urls[key]}: {what}", bare=False)
    rows += _rows(
        "api_stub",
        "one stub, in-process API",
        results["api_stub"],
        "bench/serve_stub.py: `sandbox.start(profile)` without a state dir: no log file",
        bare=False,
    )
    for key, label, what in (
        ("stub_asyncio", "one stub, `up -d`, SANDBOX_UVLOOP=0", "the supervisor on asyncio's loop"),
        ("api_stub_uvloop", "one stub, in-process API, uvloop", "serve_stub.py on uvloop"),
    ):
        if key in results:
            rows += _rows(key, label, results[key], f"GET {urls[key]}: {what}", bare=False)
    rows += _rows(
        "bare",
        "control: bare aiohttp",
        results["bare"],
        "bench/bare_aiohttp.py: one handler returning `ok`",
        bare=True,
    )
    rows += _rows(
        "bare_proxy",
        "control: bare aiohttp proxy to the bare control",
        results["bare_proxy"],
        "bench/bare_aiohttp.py with BARE_UPSTREAM: one ClientSession forwarding each request; "
        "its ratio is to the plain control, like the proxy route's",
        bare=False,
    )
    return rows

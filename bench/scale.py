"""How start-up grows with the number of stubs: `up -d` of N stubs against bare aiohttp's N sites.

For each N (1, 10, 100, 1000, 3000) both are run in turn, run by run: `sandbox up FILE -d`
from exec to its return (every stub probed ready), the supervisor's RSS, then `down` with an
independent check that every port refuses; and the bare aiohttp control with one TCPSite per
address, exec to all listening. A straight line fitted through the medians gives the cost of
one more stub, in ms and KiB, for each.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from common import (
    BENCH_DIR,
    Row,
    child_json,
    common_free_port,
    planned_addresses,
    port_free_on_all,
    sandbox_cmd,
    still_open,
    stubs_profile,
    timed_run,
)
from startup import check_json, state_env

COUNTS = (1, 10, 100, 1000, 3000)
UP_TIMEOUT = 120.0  # a bound for the whole `up -d` command, far above any target


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept) through (x, y) points; None with fewer than two."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def _first_error(proc_stderr: str, proc_stdout: str) -> str:
    text = (proc_stderr or proc_stdout).strip().splitlines()
    return text[0][:160] if text else "no output"


def _one_up(
    n: int, path: Path, env: dict[str, str], addresses: list[str], port: int
) -> dict[str, Any]:
    """One `up -d` of n stubs, its supervisor's RSS, and a verified `down`."""
    import psutil

    sandbox = sandbox_cmd()
    took, proc = timed_run([*sandbox, "up", str(path), "-d", "--json"], env=env, timeout=UP_TIMEOUT)
    got: dict[str, Any] = {"n": n}
    if proc.returncode != 0:
        got["error"] = (
            f"exit {proc.returncode} after {took:.1f} s: {_first_error(proc.stderr, proc.stdout)}"
        )
        timed_run([*sandbox, "down", path.stem, "--grace", "2"], env=env, timeout=120)
        return got
    status = json.loads(proc.stdout)
    got["up_s"] = took
    pid = int(status["supervisor_pid"])
    got["rss_mib"] = psutil.Process(pid).memory_info().rss / 2**20
    took, proc = timed_run([*sandbox, "down", path.stem, "--json"], env=env, timeout=120)
    report = check_json(proc, "down")["sandboxes"][0]
    t0 = time.perf_counter()
    left = still_open(addresses, port, timeout=0.2)
    if left or not report["clean"]:
        raise RuntimeError(f"{n} stubs not clean after down: {len(left)} open, report {report}")
    got["down_s"] = took
    got["down_clean_s"] = took + time.perf_counter() - t0
    return got


def scaling(runs: int, counts: tuple[int, ...] = COUNTS) -> list[Row]:
    """`up -d` and the bare control at each N, interleaved run by run; rows plus the fit."""
    ours: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    bare: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    with state_env() as (root, env):
        for n in counts:
            name = f"scale{n}"
            addresses = planned_addresses(stubs_profile(name, n, 1))
            port = common_free_port(addresses)
            path = root / f"{name}.yaml"
            path.write_text(yaml.safe_dump(stubs_profile(name, n, port)))
            for _ in range(runs):
                if not port_free_on_all(addresses, port):
                    raise RuntimeError(f"port {port} is no longer free on all {n} addresses")
                ours[n].append(_one_up(n, path, env, addresses, port))
                cmd = [sys.executable, str(BENCH_DIR / "bare_aiohttp.py"), repr(time.time())]
                bare[n].append(child_json([*cmd, str(port), *addresses], timeout=UP_TIMEOUT))
    return _rows(ours, bare)


def _rows(
    ours: dict[int, list[dict[str, Any]]], bare: dict[int, list[dict[str, Any]]]
) -> list[Row]:
    rows: list[Row] = []
    up_points, rss_points, bare_points, bare_rss_points = [], [], [], []
    for n in ours:
        ok = [r for r in ours[n] if "up_s" in r]
        errors = [r["error"] for r in ours[n] if "error" in r]
        bare_s = [r["launch_to_ready_s"] for r in bare[n]]
        bare_rss = [r["rss_mib"] for r in bare[n]]
        note = f"{len(errors)} of {len(ours[n])} runs failed: {errors[0]}" if errors else ""
        rows.append(
            Row(
                f"scale_up_{n}",
                f"scale: `up -d`, {n} stubs, exec -> all ready",
                [r["up_s"] for r in ok],
                "s",
                control=f"scale_bare_{n}",
                note=note,
                failed=errors[0] if errors and not ok else "",
            )
        )
        rows.append(
            Row(
                f"scale_bare_{n}",
                f"control: bare aiohttp, {n} sites, exec -> listening",
                bare_s,
                "s",
            )
        )
        if ok:
            rows.append(
                Row(
                    f"scale_rss_{n}",
                    f"scale: supervisor RSS, {n} stubs",
                    [r["rss_mib"] for r in ok],
                    "MiB",
                    control=f"scale_bare_rss_{n}",
                )
            )
            up_points.append((n, statistics.median(r["up_s"] for r in ok)))
            rss_points.append((n, statistics.median(r["rss_mib"] for r in ok)))
        rows.append(
            Row(f"scale_bare_rss_{n}", f"control: bare aiohttp RSS, {n} sites", bare_rss, "MiB")
        )
        bare_points.append((n, statistics.median(bare_s)))
        bare_rss_points.append((n, statistics.median(bare_rss)))
    for key, label, points, control_points, unit, scale in (
        (
            "scale_cost_ms",
            "scale: fitted cost per extra stub, time",
            up_points,
            bare_points,
            "ms",
            1000,
        ),
        (
            "scale_cost_kib",
            "scale: fitted cost per extra stub, memory",
            rss_points,
            bare_rss_points,
            "KiB",
            1024,
        ),
    ):
        line, control_line = fit(points), fit(control_points)
        used = ", ".join(str(int(n)) for n, _ in points)
        rows.append(
            Row(
                key,
                label,
                [line[0] * scale] if line else [],
                unit,
                control=f"{key}_bare",
                note=f"least squares through the medians at N = {used}",
                failed="" if line else "fewer than two sizes started",
            )
        )
        rows.append(
            Row(
                f"{key}_bare",
                f"control: bare aiohttp, fitted cost per extra site ({unit})",
                [control_line[0] * scale] if control_line else [],
                unit,
            )
        )
    return rows

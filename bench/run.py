"""`make bench`: start-up, memory, load, --help and down figures, as a markdown table.

    .venv/bin/python bench/run.py            # print the table (about 1.5 minutes)
    .venv/bin/python bench/run.py --write    # ... and record it in bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # fewer, shorter runs (about 30 s)

Everything binds and loads loopback only (the pool 127.77.0.0/16); every sandbox it starts
lives under a temporary SANDBOX_STATE_DIR and is downed before it exits, even on failure.
See bench/README.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

try:
    import sandbox  # noqa: F401
except ImportError:
    sys.exit("bench/run.py needs the package installed: run it with .venv/bin/python")

import far
import imports
import load
import probes
import scale
import startup
from common import Row, machine, use_bytecode_cache, warm_bytecode
from loadgen import have_wrk
from report import document, figures_table, notes, write_results
from startup import Case

SECTIONS = ("api", "bare", "cli", "scale", "load", "far", "probes", "help")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per start-up figure (5)")
    parser.add_argument("--warm", type=int, default=3, help="warm start()s per API run (3)")
    parser.add_argument("--load-runs", type=int, default=3, help="runs under load (3)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per load run, at most 10 (10)"
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="wrk if installed (auto), or force one",
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--scale-runs", type=int, default=3, help="runs per size of the N-scaling curve (3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 runs, 1 per size, 1 load run of 3 s"
    )
    parser.add_argument("--write", action="store_true", help="record the run in RESULTS.md")
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE if the environment sets it (children then compile "
        "the package from source every time)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warm, args.load_runs, args.duration = 3, 2, 1, 3.0
        args.scale_runs = 1
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    if args.write and set(args.only) != set(SECTIONS):
        parser.error("--write records a full run; drop --only")
    if not 0 < args.duration <= 10:
        parser.error("--duration must be in (0, 10]")
    return args


def _interleaved(cases: list[Case]) -> list[Row]:
    """Drive the cases one run at a time, in turn; their rows in the order of `cases`."""
    rows: dict[int, list[Row]] = {}
    active = list(enumerate(cases))
    try:
        while active:
            for index, case in list(active):
                try:
                    next(case)
                except StopIteration as done:
                    rows[index] = done.value
                    active.remove((index, case))
    finally:
        for case in cases:
            case.close()  # a failure elsewhere still downs what a case started
    return [row for index in sorted(rows) for row in rows[index]]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    info = machine()
    if args.no_pyc_cache:
        info["bytecode"] = "as the environment has it" + (
            " (PYTHONDONTWRITEBYTECODE=1)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
        )
    else:
        info["bytecode"] = use_bytecode_cache()
    warm_bytecode()
    rows: list[Row] = []
    details: dict[str, Any] = {}
    t0 = time.perf_counter()
    starts = {
        "api": lambda: startup.api_start(args.runs, args.warm),
        "bare": lambda: startup.bare_start(args.runs),
        "cli": lambda: startup.cli_up_down(args.runs),
    }
    chosen = [make for name, make in starts.items() if name in args.only]
    if chosen:
        names = ", ".join(name for name in starts if name in args.only)
        _say(f"start-up: {args.runs} interleaved runs of {names}")
        rows += _interleaved([make() for make in chosen])
    if "scale" in args.only:
        _say(f"scaling: up -d and bare aiohttp at N = {scale.COUNTS}, {args.scale_runs} runs")
        rows += scale.scaling(args.scale_runs)
    tool = "wrk" if args.loadgen == "auto" and have_wrk() else args.loadgen
    tool = "python" if tool == "auto" else tool
    if "load" in args.only:
        _say(f"load: {args.load_runs} x {args.duration:g} s per server with {tool}")
        rows += load.one_stub_load(args.duration, args.load_runs, tool)
    if "far" in args.only:
        _say(f"300 stubs: the 1st and the 300th, {args.load_runs} x {args.duration:g} s each")
        rows += far.far_stub_load(args.duration, args.load_runs, tool)
    if "probes" in args.only:
        _say(f"sandbox probe: {probes.TARGETS} targets, {args.runs} runs")
        rows += probes.probe_many(args.runs)
    if "help" in args.only:
        _say("--help and imports")
        found, details = imports.help_time(10)
        rows += found
    elapsed = time.perf_counter() - t0
    info["loadavg"] += f" at start, {_loadavg()} at the end ({elapsed:.0f} s later)"
    print(figures_table(rows))
    print()
    print(notes(rows))
    _say(f"done in {elapsed:.0f} s; load average {info['loadavg']}")
    if args.write:
        command = shlex.join([".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])])
        when = time.strftime("%Y-%m-%d %H:%M %Z")
        body = document(rows, info, details, command, when)
        write_results(Path(__file__).resolve().parent / "RESULTS.md", body)
        _say("wrote bench/RESULTS.md")
    return 0


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())

"""`sandbox --help` wall time, and `python -X importtime`: what the CLI and a start import."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from common import BENCH_DIR, REPO_DIR, Row, child_json, sandbox_cmd, timed_run

HEAVY = ("aiohttp", "psutil", "pydantic", "yaml", "jinja2")
HELP_CODE = "import sys; sys.argv = ['sandbox', '--help']; from sandbox.quick import main; main()"
START_CODE = (
    "import sandbox.api, sandbox.services.http, sandbox.profile.loader, sandbox.runtime.supervisor"
)
DOWN_CODE = "import sandbox.quick, sandbox.runtime.manage, sandbox.output.lifecycle"
# What a supervisor imports, in dependency order, so each step shows what it adds.
RSS_STEPS = (
    "asyncio", "aiohttp.web", "pydantic", "sandbox.profile.models", "psutil",
    "sandbox.runtime.sandbox", "yaml", "sandbox.profile.loader", "jinja2.sandbox",
    "sandbox.services.http", "sandbox.runtime.supervisor",
)  # fmt: skip


def rss_by_import() -> list[tuple[str, float]]:
    """(module, MiB of RSS its import added) in a fresh interpreter, in RSS_STEPS order."""
    found = child_json([sys.executable, str(BENCH_DIR / "child_rss.py"), *RSS_STEPS])
    return [(str(name), float(mib)) for name, mib in found["steps"]]


def importtime(code: str) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) of every import `python -c code` makes."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_DIR,
    )
    found = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        found.append((int(self_us), int(cumulative), depth, name.strip()))
    return found


def import_report(code: str, top: int = 8) -> dict[str, Any]:
    """Import time summed by top-level package, the slowest single modules, the heavy ones."""
    entries = importtime(code)
    packages: dict[str, int] = {}
    for self_us, _, _, name in entries:
        package = name.split(".")[0]
        packages[package] = packages.get(package, 0) + self_us
    ranked = sorted(packages.items(), key=lambda item: item[1], reverse=True)
    modules = sorted(entries, key=lambda e: e[0], reverse=True)
    return {
        "code": code,
        "total_ms": sum(e[0] for e in entries) / 1000,
        "packages": [(name, us / 1000) for name, us in ranked[:top]],
        "modules": [(name, us / 1000) for us, _, _, name in modules[:5]],
        "heavy": [h for h in HEAVY if h in packages],
    }


def help_time(runs: int) -> tuple[list[Row], dict[str, Any]]:
    """`sandbox --help` wall time against the interpreter's floor; and three import reports."""
    sandbox = sandbox_cmd()
    timed_run([*sandbox, "--help"])  # warm the page cache and the .pyc files
    helps, floors = [], []
    for _ in range(runs):
        took, proc = timed_run([*sandbox, "--help"])
        if proc.returncode != 0:
            raise RuntimeError(f"sandbox --help exited {proc.returncode}: {proc.stderr}")
        helps.append(took)
        floors.append(timed_run([sys.executable, "-c", "pass"])[0])
    details = {
        "help": import_report(HELP_CODE),
        "down": import_report(DOWN_CODE),
        "start": import_report(START_CODE, top=10),
        "rss": rss_by_import(),
    }
    heavy = ", ".join(details["help"]["heavy"]) or "none"
    rows = [
        Row("help", "`sandbox --help` wall", helps, "s", note=f"heavy libraries imported: {heavy}"),
        Row("python_floor", "floor: `python -c pass` wall", floors, "s"),
    ]
    return rows, details

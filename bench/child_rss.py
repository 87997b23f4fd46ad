"""Child of bench/run.py: the RSS each import of a supervisor adds, in the order it needs them.

Usage: python bench/child_rss.py MODULE [MODULE ...]; prints one JSON line {"steps": [...]}
of [module, MiB added] pairs, the first being the interpreter itself.
"""

from __future__ import annotations

import importlib
import sys


def _rss_mib() -> float:
    # Read /proc by hand: importing bench/common.py would add its own imports to the figure.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(modules: list[str]) -> list[tuple[str, float]]:
    before = _rss_mib()
    steps = [("python (the interpreter itself)", before)]
    for module in modules:
        importlib.import_module(module)
        now = _rss_mib()
        steps.append((module, now - before))
        before = now
    return steps


if __name__ == "__main__":
    steps = main(sys.argv[1:])
    import json

    print(json.dumps({"steps": steps}))

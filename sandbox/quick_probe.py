"""`sandbox probe ADDRESS:PORT...` answered without typer: the entry point's fast path.

typer (and the pydantic it loads) takes longer to import than probing a thousand loopback
ports. A command line of literal `ADDRESS:PORT` targets with `--json` and `--timeout`
only is probed here, through the same functions and views as the typer command, so the
output and the exit code are the same. Anything else (a URL, a name, another option, a
target that does not parse) returns None and the caller hands the command line to typer,
which also words every error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sandbox.errors import ExitCode, SandboxError

if TYPE_CHECKING:
    from sandbox.output import Printer
    from sandbox.probe.targets import Target

_SECONDS = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")  # what typer's float reads as we do


def parse_probe(args: list[str]) -> tuple[list[str], float, bool] | None:
    """(targets, timeout, json) for a plain `probe` command line; None for anything else."""
    targets: list[str] = []
    timeout, json_ = 2.0, False
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--json":
            json_ = True
        elif arg == "--timeout" or arg.startswith("--timeout="):
            value = arg.partition("=")[2] if "=" in arg else (rest.pop(0) if rest else "")
            if not _SECONDS.fullmatch(value) or not float(value) > 0:
                return None
            timeout = float(value)
        elif arg.startswith("-") or not arg:
            return None
        else:
            targets.append(arg)
    return (targets, timeout, json_) if targets else None


def literal_targets(texts: list[str]) -> list[Target] | None:
    """Each text parsed, when every one is a literal loopback ADDRESS:PORT; else None."""
    from sandbox.probe.targets import is_literal, parse_target

    parsed = []
    for text in texts:
        try:
            target = parse_target(text)
        except ValueError:  # TargetError: typer's path reports it
            return None
        if target.kind != "hostport" or target.host is None or not is_literal(target.host):
            return None  # a name to resolve or look up: the full command does that
        parsed.append(target)
    return parsed


def _no_bundles() -> bool:
    """What the typer command does before it probes, as far as it can fail or matter: open
    (create) and check the state folder, then load the CAs of running TLS sandboxes. True
    when that is done and nothing was found; a problem, or CAs to load, are typer's."""
    from sandbox.runtime.authority import running_bundles
    from sandbox.runtime.state import state_root

    try:
        return not running_bundles(state_root())
    except (SandboxError, OSError):
        return False


def run_probe(args: list[str]) -> int | None:
    """`sandbox probe` of literal targets: print the results; the exit code. None: not handled
    here, the caller runs the typer command instead."""
    parsed = parse_probe(args)
    if parsed is None:
        return None
    texts, timeout, json_ = parsed
    targets = literal_targets(texts)
    if targets is None or not _no_bundles():
        return None
    from sandbox.quick import bounded

    return bounded(json_, lambda out: probe_command(targets, timeout, json_, out))


def probe_command(targets: list[Target], timeout: float, json_: bool, out: Printer) -> int:
    """Probe `targets` and print what the typer command prints; the exit code."""
    from sandbox.output import diagnose as view
    from sandbox.probe.survey import probe_literals

    results = probe_literals(targets, timeout=timeout)
    if json_:
        out.json({"results": [r.to_json() for r in results]})
    else:
        view.probes(out, results)
    return 0 if all(r.ok for r in results) else int(ExitCode.NOT_READY)

"""Commands that look without changing anything: `plan`, `probe`, `ports`, `doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandbox.cli import (
    JsonOpt,
    OnConflictOpt,
    ProfileArg,
    app,
    command,
    conflict_strategy,
    load,
    printer,
    state_root,
)
from sandbox.errors import ExitCode, ProfileNotFound, UsageError
from sandbox.output import diagnose as view


@app.command()
@command
def plan(
    profile: ProfileArg,
    on_conflict: OnConflictOpt = "fail",
    json_: JsonOpt = False,
) -> None:
    """Dry run: every service's address, port and URL, and every conflict with its owner and fix.

    Exit 0 when the plan is clean, 4 when conflicts remain.
    """
    from sandbox.net.table import read_bindv6only, read_table
    from sandbox.plan import make_plan
    from sandbox.runtime.status import recorded_pids

    loaded = load(profile)
    result = make_plan(
        loaded,
        read_table(),
        on_conflict=conflict_strategy(on_conflict),
        default_v6only=read_bindv6only(),
        ours=recorded_pids(state_root()),
    )
    out = printer()
    if json_:
        out.json(result.to_json())
    else:
        view.plan(out, loaded.name, result)
    if result.conflicts:
        raise typer.Exit(int(ExitCode.CONFLICT))


def named_endpoints(name: str) -> list[tuple[str, str, int]]:
    """(label, address, port) of each service of `name`: where its running sandbox is, else
    where its plan would put it. Raises UsageError when `name` is not a profile either."""
    from sandbox.plan import make_plan
    from sandbox.profile.loader import load_profile
    from sandbox.runtime.state import StateDir

    record = StateDir(state_root(), name).read()
    if record is not None:
        return [(f"{name}/{s.name}", s.address, s.port) for s in record.services]
    try:
        profile = load_profile(name)
    except ProfileNotFound:
        raise UsageError(
            f"{name!r} is neither host:port, a URL, nor a profile name.",
            "Write 127.0.0.5:8080, [::1]:9000, localhost:5432 or http://127.0.0.9:8000/health.",
        ) from None
    planned = make_plan(profile)
    return [(f"{name}/{s.name}", str(s.address), s.port) for s in planned.services if s.port]


@app.command()
@command
def probe(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="127.0.0.5:8080, [::1]:9000, localhost:5432, http://127.0.0.9:8000/health, "
            "https://..., or a profile name (probes each of its services)."
        ),
    ],
    timeout: Annotated[float, typer.Option(help="Seconds each probe may take.")] = 2.0,
    cacert: Annotated[
        Path | None,
        typer.Option(
            "--cacert",
            help="The CA https:// targets must be signed by (default: running sandboxes' CAs).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Is it reachable, and how: open, refused, timeout, unreachable; with latency.

    Only loopback is probed: this is not a network scanner. Exit 0 when every target is
    reachable, 5 otherwise.
    """
    import asyncio
    import math

    from sandbox.probe.survey import probe_targets
    from sandbox.probe.tls import trusting_all
    from sandbox.runtime.authority import running_bundles

    if not 0 < timeout < math.inf:  # (NaN too)
        raise UsageError(
            f"--timeout {timeout:g}: a probe needs some time; give seconds above 0, such as 0.5."
        )
    if cacert is not None and not cacert.is_file():
        raise UsageError(f"--cacert {cacert}: there is no such file.")
    import ssl

    try:
        tls = trusting_all([cacert] if cacert is not None else running_bundles(state_root()))
    except ssl.SSLError as exc:
        raise UsageError(f"--cacert {cacert}: not a PEM certificate ({exc.reason}).") from None
    results = asyncio.run(probe_targets(targets, timeout=timeout, named=named_endpoints, tls=tls))
    out = printer()
    if json_:
        out.json({"results": [r.to_json() for r in results]})
    else:
        view.probes(out, results)
    if not all(r.ok for r in results):
        raise typer.Exit(int(ExitCode.NOT_READY))


@app.command()
@command
def ports(
    all_: Annotated[
        bool, typer.Option("--all", help="Every listener, not only loopback and wildcard ones.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Who listens on loopback, with owners (like `ss -ltnp` / `lsof -i`)."""
    from sandbox.net.table import loopback_listeners, read_table

    table = read_table()
    rows = (
        sorted(table, key=lambda x: (x.port, str(x.address))) if all_ else loopback_listeners(table)
    )
    out = printer()
    if json_:
        out.json(view.listeners_json(rows))
    else:
        view.listeners(out, rows)


@app.command()
@command
def doctor(json_: JsonOpt = False) -> None:
    """Is loopback healthy: 127/8 beyond 127.0.0.1, ::1, what localhost resolves to, port limits."""
    from sandbox.doctor import overall, run_checks

    checks = run_checks()
    out = printer()
    if json_:
        out.json({"status": overall(checks), "checks": [c.to_json() for c in checks]})
    else:
        view.checks(out, checks)
    if overall(checks) == "problem":
        raise typer.Exit(int(ExitCode.UNEXPECTED))

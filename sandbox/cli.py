"""The command line: one function per command, and the only place that exits.

Heavy libraries (aiohttp, psutil, pydantic) are imported inside the commands that need
them, so `sandbox --help` stays fast.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from sandbox.errors import ExitCode, SandboxError, UsageError
from sandbox.output import Printer

if TYPE_CHECKING:
    from sandbox.profile.models import Profile

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help=(
        "Bring up a multi-service setup on loopback addresses, offline, in a second.\n\n"
        "Every service gets its own address in 127.0.0.0/8 (or ::1); port conflicts are "
        "found and explained before anything serves; `down` verifies nothing is left.\n\n"
        "Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 invalid profile, 4 port conflict, "
        "5 not ready / probe failed, 6 teardown incomplete, 130 interrupted."
    ),
)
_state: dict[str, Any] = {"debug": False}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
ProfileArg = Annotated[
    str, typer.Argument(help="A profile name (looked up in ./profiles, $SANDBOX_PROFILE_PATH, "
                        "then the bundled ones) or a path to a YAML file.")
]  # fmt: skip
OnConflictOpt = Annotated[
    str,
    typer.Option(
        "--on-conflict",
        help="What to do when an address:port is taken: fail, next-address or next-port.",
    ),
]


def printer() -> Printer:
    return Printer()


def command(func: Callable[P, R]) -> Callable[P, R]:
    """The error boundary: expected errors become a message and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SandboxError as exc:
            if _state["debug"]:
                raise
            printer().error(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            printer().note("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if _state["debug"]:
                raise
            printer().error(
                SandboxError(
                    f"unexpected error: {type(exc).__name__}: {exc}",
                    "Run again with --debug for the traceback, and report it if it repeats.",
                )
            )
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None

    return wrapper


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def _on_conflict(value: str) -> Any:
    from sandbox.plan import ON_CONFLICT_CHOICES

    if value not in ON_CONFLICT_CHOICES:
        raise UsageError(
            f"--on-conflict {value!r} is not one of: {', '.join(ON_CONFLICT_CHOICES)}.",
        )
    return value


def _load(ref: str) -> Profile:
    from sandbox.profile.loader import load_profile

    return load_profile(ref)


def _state_root() -> Path:
    from sandbox.runtime.state import state_root

    return state_root()


# -- profiles ------------------------------------------------------------------------------


@app.command()
@command
def profiles(json_: JsonOpt = False) -> None:
    """List the profiles that can be found by name, with where each comes from."""
    from sandbox.profile.loader import discover

    found = discover()
    out = printer()
    if json_:
        out.json({"profiles": [_found_json(f) for f in found]})
        return
    if not found:
        out.line("No profiles found (looked in ./profiles, $SANDBOX_PROFILE_PATH, bundled).")
        return
    out.table(
        ["NAME", "FROM", "DESCRIPTION"],
        [
            (f.name, f.origin, f.description if not f.error else f"INVALID: {f.error}")
            for f in found
        ],
    )


def _found_json(found: Any) -> dict[str, object]:
    return {
        "name": found.name,
        "path": str(found.path),
        "origin": found.origin,
        "description": found.description,
        "error": found.error,
    }


@app.command()
@command
def validate(
    refs: Annotated[list[str], typer.Argument(help="Profile names or paths.")],
    json_: JsonOpt = False,
) -> None:
    """Check profiles strictly; print every problem as FILE:LINE:COL field.path: message."""
    from sandbox.errors import ProfileError

    out = printer()
    results: list[dict[str, object]] = []
    worst = ExitCode.OK
    for ref in refs:
        try:
            profile = _load(ref)
        except ProfileError as exc:
            results.append({"profile": ref, "valid": False, "problems": exc.problems})
            worst = max(worst, exc.exit_code)
            if not json_:
                out.error(exc)
            continue
        except SandboxError as exc:
            results.append({"profile": ref, "valid": False, "problems": [exc.message]})
            worst = max(worst, exc.exit_code)
            if not json_:
                out.error(exc)
            continue
        results.append({"profile": ref, "valid": True, "source": profile.source, "problems": []})
        if not json_:
            count = len(profile.services)
            out.ok(f"{profile.source or ref}: valid ({count} services)")
    if json_:
        out.json({"results": results})
    if worst:
        raise typer.Exit(int(worst))


@app.command()
@command
def schema() -> None:
    """Print the JSON Schema of the profile format (for editor completion and checks)."""
    from sandbox.profile.schema import profile_schema

    printer().json(profile_schema())


# -- plan, probe, ports, doctor -------------------------------------------------------------


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

    loaded = _load(profile)
    result = make_plan(
        loaded,
        read_table(),
        on_conflict=_on_conflict(on_conflict),
        default_v6only=read_bindv6only(),
        ours=recorded_pids(_state_root()),
    )
    out = printer()
    if json_:
        out.json(result.to_json())
    else:
        out.line(f"{loaded.name}: {len(result.services)} services, pool {result.pool}")
        out.table(
            ["SERVICE", "KIND", "ADDRESS", "PORT", "URL"],
            [
                (s.name, s.kind, s.address, s.port or "auto", s.url if s.port else "-")
                for s in result.services
            ],
        )
        for move in result.moves:
            out.line(out.paint("moved: ", "yellow") + move.sentence())
        for conflict in result.conflicts:
            out.line(out.paint("conflict: ", "red") + conflict.sentence())
        if result.ok:
            out.ok("no conflicts: every address:port is free")
    if result.conflicts:
        raise typer.Exit(int(ExitCode.CONFLICT))


@app.command()
@command
def probe(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="127.0.0.5:8080, [::1]:9000, localhost:5432, http://127.0.0.9:8000/health, "
            "or a profile name (probes each of its services)."
        ),
    ],
    timeout: Annotated[float, typer.Option(help="Seconds each probe may take.")] = 2.0,
    json_: JsonOpt = False,
) -> None:
    """Is it reachable, and how: open, refused, timeout, unreachable; with latency.

    Only loopback is probed: this is not a network scanner. Exit 0 when every target is
    reachable, 5 otherwise.
    """
    from sandbox.inspect import probe_targets

    results = asyncio.run(probe_targets(targets, timeout=timeout, state_root=_state_root()))
    out = printer()
    if json_:
        out.json({"results": [r.to_json() for r in results]})
    else:
        out.table(
            ["TARGET", "ADDRESS", "STATE", "LATENCY", "HTTP", "DETAIL"],
            [
                (
                    r.target,
                    _hostport(r.address, r.port),
                    out.paint(r.state.value, "green" if r.ok else "red"),
                    f"{r.latency_ms:.2f} ms" if r.latency_ms is not None else None,
                    r.http_status,
                    r.detail,
                )
                for r in results
            ],
        )
    if not all(r.ok for r in results):
        raise typer.Exit(int(ExitCode.NOT_READY))


def _hostport(address: str | None, port: int | None) -> str:
    from sandbox.net.addresses import format_hostport

    if address is None or port is None:
        return "-"
    return format_hostport(address, port)


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
        out.json(
            {
                "listeners": [
                    {
                        "address": str(x.address),
                        "port": x.port,
                        "protocol": x.protocol,
                        "pid": x.owner.pid if x.owner else None,
                        "process": x.owner.name if x.owner else None,
                        "cmdline": x.owner.cmdline if x.owner else None,
                        "user": x.owner.user if x.owner else None,
                    }
                    for x in rows
                ]
            }
        )
        return
    out.table(
        ["PROTO", "LISTEN", "PID", "PROCESS", "USER", "COMMAND"],
        [
            (
                x.protocol,
                x.hostport,
                x.owner.pid if x.owner else None,
                x.owner.name if x.owner else "(not visible)",
                x.owner.user if x.owner else None,
                _short(x.owner.cmdline if x.owner else None),
            )
            for x in rows
        ],
    )


def _short(text: str | None, width: int = 60) -> str | None:
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


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
        marks = {
            "ok": ("ok", "green"),
            "warning": ("warning", "yellow"),
            "problem": ("problem", "red"),
        }
        for check in checks:
            label, colour = marks[check.status]
            out.line(f"{out.paint(f'{label:<8}', colour)} {check.title}: {check.summary}")
            if check.fix:
                out.line(f"{'':<8} fix: {check.fix}")
    if overall(checks) == "problem":
        raise typer.Exit(int(ExitCode.UNEXPECTED))


# -- the lifecycle --------------------------------------------------------------------------


@app.command()
@command
def up(
    profile: ProfileArg,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Return once every service is ready.")
    ] = False,
    wait_timeout: Annotated[
        str, typer.Option("--wait-timeout", help="How long services may take to be ready (30s).")
    ] = "30s",
    on_conflict: OnConflictOpt = "fail",
    name: Annotated[
        str | None, typer.Option("--name", help="Run under another name (default: the profile's).")
    ] = None,
    no_request_log: Annotated[
        bool,
        typer.Option(
            "--no-request-log",
            help="No log line per request for any stub (also: SANDBOX_REQUEST_LOG=0).",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Bring a profile up: plan, bind every socket, start in order, probe until ready.

    In the foreground (default) logs stream until Ctrl-C; with -d a supervisor keeps the
    sandbox running in the background and `sandbox down` stops it.
    """
    from sandbox.lifecycle import up_detached, up_foreground
    from sandbox.profile.models import parse_duration
    from sandbox.runtime.supervisor import request_log_default

    try:
        timeout = parse_duration(wait_timeout)
    except ValueError as exc:
        raise UsageError(f"--wait-timeout: {exc}") from None
    loaded = _load(profile)
    strategy = _on_conflict(on_conflict)
    request_log = not no_request_log and request_log_default()
    out = printer()
    if detach:
        status = up_detached(
            loaded,
            name=name,
            state_root=_state_root(),
            on_conflict=strategy,
            wait_timeout=timeout,
            request_log=request_log,
        )
        if json_:
            out.json(status)
        else:
            out.services_table(status["services"])
            out.note(f"running in the background; stop it with `sandbox down {status['name']}`")
        return
    code = up_foreground(
        loaded,
        name=name,
        state_root=_state_root(),
        on_conflict=strategy,
        wait_timeout=timeout,
        out=out,
        json_=json_,
        request_log=request_log,
    )
    if code:
        raise typer.Exit(code)


@app.command()
@command
def status(
    name: Annotated[str | None, typer.Argument(help="A sandbox name (default: all).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every running sandbox and its services, with a live probe of each."""
    from sandbox.lifecycle import statuses

    found = asyncio.run(statuses(_state_root(), name))
    out = printer()
    if json_:
        out.json({"sandboxes": found})
        return
    if not found:
        out.line(f'sandbox "{name}" is not running.' if name else "No sandbox is running.")
        return
    for sandbox in found:
        state = sandbox["state"]
        colour = "green" if state == "running" else "red"
        out.line(
            f"{out.paint(sandbox['name'], 'bold')} ({out.paint(state, colour)}, "
            f"supervisor pid {sandbox['supervisor_pid']}, up {sandbox['uptime_s']:.0f}s)"
        )
        out.services_table(sandbox["services"])
        if state == "stale":
            out.warn(f"its supervisor is gone; `sandbox down {sandbox['name']}` cleans up")


@app.command()
@command
def logs(
    name: Annotated[str, typer.Argument(help="The sandbox.")],
    service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[int, typer.Option("--tail", help="Lines from the end of each log.")] = 50,
) -> None:
    """Print the logs of a sandbox's services (the last lines; -f follows)."""
    from sandbox.lifecycle import read_logs

    out = printer()
    for svc, text in read_logs(_state_root(), name, service, tail=tail, follow=follow):
        out.service_line(svc, text)


@app.command()
@command
def down(
    name: Annotated[str | None, typer.Argument(help="The sandbox to stop.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every recorded sandbox.")] = False,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 5.0,
    json_: JsonOpt = False,
) -> None:
    """Stop a sandbox from its record, then verify every port refuses and no process is left.

    Exit 0 when everything is gone, 6 when something survived.
    """
    from sandbox.quick import down_command

    code = down_command(name, all_, grace, json_, printer())
    if code:
        raise typer.Exit(code)


@app.command()
@command
def version() -> None:
    """Print the version."""
    from sandbox import __version__

    printer().line(__version__)


# -- teaching: explain, ping, hosts ---------------------------------------------------------


@app.command()
@command
def explain(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="ADDRESS:PORT, localhost:PORT, NAME/SERVICE of a running sandbox, or a profile."
        ),
    ],
    json_: JsonOpt = False,
) -> None:
    """Can this endpoint be bound now, who holds it and under which rule, and the ways out.

    It explains rather than checks, so it exits 0 whatever it finds (`sandbox plan` is the
    check: exit 4 on conflicts).
    """
    from sandbox.teach.explain import explain as run_explain
    from sandbox.teach.explain import render

    results = []
    for target in targets:
        results.extend(asyncio.run(run_explain(target, state_root=_state_root())))
    out = printer()
    if json_:
        out.json({"explanations": [r.to_json() for r in results]})
    else:
        render(results, out)


@app.command()
@command
def ping(
    host: Annotated[
        str, typer.Argument(help="A loopback address (127.x.y.z or ::1), or localhost.")
    ],
    count: Annotated[int, typer.Option("-c", "--count", min=1, max=100, help="Echo requests.")] = 4,
    interval: Annotated[float, typer.Option("-i", "--interval", help="Seconds between.")] = 0.2,
    json_: JsonOpt = False,
) -> None:
    """ICMP echo to a loopback address, like the system ping, with round-trip times.

    Exit 0 when a reply came back, 5 when none did.
    """
    from sandbox.teach import ping as pinger

    out = printer()
    on_reply = None if json_ else (lambda partial: pinger.render_progress(partial, out))
    report = pinger.ping(host, count=count, interval=interval, on_reply=on_reply)
    if json_:
        out.json(report.to_json())
    else:
        pinger.render(report, out, streamed=True)
    if report.received == 0:
        raise typer.Exit(int(ExitCode.NOT_READY))


@app.command()
@command
def hosts(
    profile: Annotated[str, typer.Argument(help="A profile, or the name of a running sandbox.")],
    write: Annotated[
        Path | None,
        typer.Option("--write", help="Put the lines into FILE, inside marked lines."),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="With --write FILE: take the marked lines out again.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Hosts-file lines that give each service a name (api.web-db-api.test -> its address).

    Prints them; edits a file only when asked with --write, and only between marked lines.
    """
    from sandbox.teach.hosts import hosts as run_hosts
    from sandbox.teach.hosts import render

    report = run_hosts(profile, state_root=_state_root(), write=write, remove=remove)
    out = printer()
    if json_:
        out.json(report.to_json())
    else:
        render(report, out)


# -- labs -----------------------------------------------------------------------------------

lab_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
app.add_typer(
    lab_app,
    name="lab",
    help="Small, reversible situations to practise on: a port taken, two services on one port, "
    "localhost versus ::1, a service on one address of 127/8. `lab list` shows them.",
)
LabArg = Annotated[str, typer.Argument(help="The lab (see `sandbox lab list`).")]


@lab_app.command("list")
@command
def lab_list(json_: JsonOpt = False) -> None:
    """Every lab, the addresses and ports it uses, and whether it runs now."""
    from sandbox.teach.labs import list_labs, render_list

    entries = list_labs(_state_root())
    if json_:
        printer().json({"labs": [e.to_json() for e in entries]})
    else:
        render_list(entries, printer())


@lab_app.command("start")
@command
def lab_start(name: LabArg, json_: JsonOpt = False) -> None:
    """Start a lab in the background (as the sandbox lab-NAME) and print what to try.

    Exit 4 when one of its fixed address:ports is taken, with who holds it.
    """
    from sandbox.teach.labs import render_started, start_lab

    started = start_lab(name, _state_root())
    if json_:
        printer().json(started.to_json())
    else:
        render_started(started, printer())


@lab_app.command("stop")
@command
def lab_stop(
    name: LabArg,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 5.0,
    json_: JsonOpt = False,
) -> None:
    """Stop a lab and verify every port it used refuses again. Exit 6 if something survived."""
    from sandbox.teach.labs import render_stopped, stop_lab

    report = stop_lab(name, _state_root(), grace=grace)
    if json_:
        printer().json(report.to_json())
    else:
        render_stopped(report, printer())
    if not report.clean:
        raise typer.Exit(int(ExitCode.TEARDOWN_INCOMPLETE))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C while typer parses, before a command's boundary
        sys.exit(int(ExitCode.INTERRUPTED))

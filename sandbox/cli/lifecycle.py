"""Commands that start and stop sandboxes: `up` (foreground or -d), `status`, `logs`,
`requests` (what stubs received), `down` (and `version`, listed after them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from sandbox.errors import ExitCode, SandboxError, UsageError
from sandbox.output import lifecycle as view
from sandbox.output import progress
from sandbox.output.printer import Printer
from sandbox.quick import undone_on_closed_pipe as undone_on_closed_pipe  # lab uses it too

if TYPE_CHECKING:
    from sandbox.io.container import Binder
    from sandbox.plan import OnConflict
    from sandbox.profile.models import Profile

GraceOpt = Annotated[
    float, typer.Option("--grace", help="Seconds to wait after SIGTERM before SIGKILL.")
]


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
    container_listen: Annotated[
        bool,
        typer.Option(
            "--container-listen",
            help="Inside a container only: listen on the container's interface (see "
            "docs/import-export.md). Refused elsewhere and with -d.",
        ),
    ] = False,
) -> None:
    """Bring a profile up: plan, bind every socket, start in order, probe until ready.

    In the foreground (default) logs stream until Ctrl-C; with -d a supervisor keeps the
    sandbox running in the background and `sandbox down` stops it. A foreground `up`
    stopped by SIGTERM exits 143, by Ctrl-C 130.
    """
    from sandbox.profile.models import parse_duration
    from sandbox.runtime.launch import request_log_default
    from sandbox.runtime.manage import up_detached

    try:
        timeout = parse_duration(wait_timeout)
    except ValueError as exc:
        raise UsageError(f"--wait-timeout: {exc}") from None
    bind = container_mode(detach) if container_listen else None
    loaded = load(profile)
    strategy = conflict_strategy(on_conflict)
    request_log = not no_request_log and request_log_default()
    out = printer()
    if not detach:
        code = foreground(
            loaded, name, state_root(), strategy, timeout, out, json_, bind, request_log=request_log
        )
        if code:
            raise typer.Exit(code)
        return
    bar = progress.Progress(out, f"{name or loaded.name}: starting")
    try:
        status = up_detached(
            loaded,
            name=name,
            state_root=state_root(),
            on_conflict=strategy,
            wait_timeout=timeout,
            request_log=request_log,
            on_progress=bar.update,
        )
    finally:
        bar.done()
    with undone_on_closed_pipe(status["name"]):
        if json_:
            out.json(status)
        else:
            progress.moves(out, status["moves"], strategy)
            view.detached(out, status)


def container_mode(detach: bool) -> Binder:
    """The binder of `--container-listen`; refused with -d and outside a container."""
    from sandbox.io.container import container_binder

    if detach:
        raise UsageError(
            "--container-listen runs in the foreground only (it is the container's main "
            "process); it cannot be combined with -d.",
            "Leave -d out: the container engine keeps the process running.",
        )
    # Where to look for the container markers: `/`, unless SANDBOX_CONTAINER_ROOT says
    # otherwise (whoever can set it can set $container too, so it opens no way around).
    return container_binder(root=Path(os.environ.get("SANDBOX_CONTAINER_ROOT", "/")))


def foreground(
    profile: Profile,
    name: str | None,
    root: Path,
    strategy: OnConflict,
    wait_timeout: float,
    out: Printer,
    json_: bool,
    bind: Binder | None = None,
    *,
    request_log: bool = True,
) -> int:
    """Run the sandbox here, streaming logs, until SIGINT / SIGTERM / SIGHUP; return the code:
    0 after `down` from elsewhere, 130 after SIGINT, 128 + the signal's number otherwise."""
    import asyncio

    return asyncio.run(
        _foreground(profile, name, root, strategy, wait_timeout, out, json_, bind, request_log)
    )


async def _foreground(
    profile: Profile,
    name: str | None,
    root: Path,
    strategy: OnConflict,
    wait_timeout: float,
    out: Printer,
    json_: bool,
    bind: Binder | None,
    request_log: bool,
) -> int:
    import asyncio

    from sandbox.net.sockets import bind_all
    from sandbox.runtime.events import Event
    from sandbox.runtime.sandbox import Sandbox
    from sandbox.runtime.state import StateDir
    from sandbox.runtime.status import sandbox_status

    width = max(len(s) for s in profile.services)
    started = False
    stop = asyncio.Event()
    received: list[int] = []

    def show(event: Event) -> None:
        try:
            view.event(out, event, width=width, started=started, json_=json_)
        except BrokenPipeError:
            # `up | head`: nobody reads any more, so nobody could stop us with Ctrl-C.
            received.append(int(ExitCode.BROKEN_PIPE) - 128)
            stop.set()

    sandbox = Sandbox(
        profile,
        name=name,
        on_conflict=strategy,
        state_root=root,
        wait_timeout=wait_timeout,
        emit=show,
        foreground=True,
        # Container mode swaps how sockets are bound, nothing else.
        bind=bind or bind_all,
        request_log=request_log,
    )
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            out.note(f"{signal.Signals(signum).name}: stopping (again to force)")
            stop.set()
        else:
            sandbox.force()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    from sandbox.runtime.requests import serve_restarts

    stop_restarts = serve_restarts(sandbox, StateDir(root, sandbox.name))
    try:
        t0 = time.perf_counter()
        await sandbox.start()
        started = True
        status = await sandbox_status(StateDir(root, sandbox.name))
        moved = [m.to_json() for m in sandbox.plan.moves] if sandbox.plan else []
        if json_:
            out.json({**status.to_json(), "moves": moved} if status else {})
        elif status is not None:
            progress.moves(out, moved, strategy)
            seconds = time.perf_counter() - t0
            view.all_ready(out, sandbox.name, len(sandbox.services), seconds, status.to_json())
        await stop.wait()
        await sandbox.stop()
        out.note(f"{sandbox.name}: stopped")
    finally:
        await sandbox.stop()
        stop_restarts()
        for sig in handled:
            loop.remove_signal_handler(sig)
    if not received:
        return 0
    if received[0] == signal.SIGINT:
        return int(ExitCode.INTERRUPTED)
    return 128 + received[0]


@app.command()
@command
def status(
    name: Annotated[str | None, typer.Argument(help="A sandbox name (default: all).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every running sandbox and its services: ready, starting, exited (code or signal),
    restarting (n of max), gave up, completed (jobs), with a live probe of each.

    Exit 0 when every service is ready (or completed), 5 when one is not, or when the
    sandbox NAME is not running (so `until sandbox status NAME; do ...` waits for it).
    """
    from sandbox.quick_read import status_command  # shared with the typer-free fast path

    code = status_command(name, json_, printer())
    if code:
        raise typer.Exit(code)


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
    """Print the logs of a sandbox's services (the last lines; -f follows). Once it is down,
    or after a failed `up`, the logs of its last run."""
    from sandbox.quick_read import logs_command  # shared with the typer-free fast path

    logs_command(name, service, follow, tail, printer())


@app.command()
@command
def requests(
    name: Annotated[str, typer.Argument(help="The sandbox.")],
    service: Annotated[str | None, typer.Argument(help="One stub (default: all).")] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print JSON (with -f, one entry per line).")
    ] = False,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing requests as they arrive.")
    ] = False,
    method: Annotated[str | None, typer.Option("--method", help="Only this method.")] = None,
    path: Annotated[str | None, typer.Option("--path", help="Only this exact path.")] = None,
) -> None:
    """What a sandbox's stubs received, oldest first (-f follows until Ctrl-C)."""
    from sandbox.quick_read import RequestsLine, requests_command  # shared with the fast path

    requests_command(RequestsLine(name, service, json_, follow, method, path), printer())


@app.command()
@command
def down(
    name: Annotated[
        str | None,
        typer.Argument(
            help="The sandbox to stop: its name, or the profile (name or path) `up` got."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every recorded sandbox.")] = False,
    grace: GraceOpt = 5.0,
    json_: JsonOpt = False,
) -> None:
    """Stop a sandbox from its record, then verify every port refuses and no process is left.

    Exit 0 when everything is gone (or nothing was running: it says so), 6 when something
    survived.
    """
    from sandbox.quick import down_command  # shared with the typer-free fast path

    code = down_command(name, all_, grace, json_, printer())
    if code:
        raise typer.Exit(code)


@app.command()
@command
def reload(
    name: Annotated[str, typer.Argument(help="The running sandbox.")],
    service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Reload again whenever the profile file changes.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Re-read the profile and swap changed stubs' routes; their sockets stay bound.

    An invalid edit changes nothing (exit 3); an edit that needs a restart (address, port,
    kind, tls, services added or removed) is refused, naming each (exit 2).
    """
    from sandbox.runtime.reload import changes, reload_running, running_profile

    out = printer()
    root = state_root()
    path = running_profile(root, name, service)
    view.reloaded(out, name, reload_running(root, name, service), json_=json_)
    if not watch:
        return
    out.note(f"watching {path} (Ctrl-C stops)")
    for _ in changes(path):
        try:
            view.reloaded(out, name, reload_running(root, name, service), json_=json_)
        except SandboxError as exc:  # a bad edit is reported; the watch goes on
            if json_:
                out.error_json(exc)
            else:
                out.error(exc)


@app.command()
@command
def ca(name: Annotated[str, typer.Argument(help="The running sandbox.")]) -> None:
    """Print the path of the sandbox's CA certificate, for `curl --cacert` and the like."""
    from sandbox.runtime.authority import find_bundle

    printer().line(str(find_bundle(state_root(), name)))


@app.command()
@command
def restart(
    name: Annotated[str, typer.Argument(help="The running sandbox.")],
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to restart (default: all).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait until they are ready again.")
    ] = 60.0,
    json_: JsonOpt = False,
) -> None:
    """Restart services of a running sandbox, each until it is ready again; the others keep
    running on their sockets. Exit 0 when all are ready again, 5 when one is not."""
    from sandbox.runtime.requests import request_restart
    from sandbox.runtime.state import StateDir

    answer = request_restart(StateDir(state_root(), name), services or [], timeout=timeout)
    out = printer()
    if json_:
        out.json(answer)
    else:
        view.restarted(out, name, answer["services"])
    if any(not s["ok"] for s in answer["services"]):
        raise typer.Exit(int(ExitCode.NOT_READY))


@app.command()
@command
def version() -> None:
    """Print the version."""
    from sandbox import __version__

    printer().line(__version__)

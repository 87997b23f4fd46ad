"""Teaching commands: `explain`, `ping`, `hosts`, and the `lab` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandbox.cli import JsonOpt, app, command, printer, state_root
from sandbox.cli.lifecycle import GraceOpt, undone_on_closed_pipe
from sandbox.errors import ExitCode


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
    import asyncio

    from sandbox.output import explain as view
    from sandbox.teach.explain import explain as run_explain

    results = []
    for target in targets:
        results.extend(asyncio.run(run_explain(target, state_root=state_root())))
    out = printer()
    if json_:
        out.json({"explanations": [r.to_json() for r in results]})
    else:
        view.render(results, out)


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
    from sandbox.output import ping as view
    from sandbox.teach import ping as pinger

    out = printer()
    on_reply = None if json_ else (lambda partial: view.render_progress(partial, out))
    report = pinger.ping(host, count=count, interval=interval, on_reply=on_reply)
    if json_:
        out.json(report.to_json())
    else:
        view.render(report, out, streamed=True)
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
    from sandbox.output import hosts as view
    from sandbox.teach.hosts import hosts as run_hosts

    report = run_hosts(profile, state_root=state_root(), write=write, remove=remove)
    out = printer()
    if json_:
        out.json(report.to_json())
    else:
        view.render(report, out)


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
    from sandbox.output import labs as view
    from sandbox.teach.labs import list_labs

    entries = list_labs(state_root())
    if json_:
        printer().json({"labs": [e.to_json() for e in entries]})
    else:
        view.render_list(entries, printer())


@lab_app.command("start")
@command
def lab_start(name: LabArg, json_: JsonOpt = False) -> None:
    """Start a lab in the background (as the sandbox lab-NAME) and print what to try.

    Exit 4 when one of its fixed address:ports is taken, with who holds it.
    """
    from sandbox.output import labs as view
    from sandbox.teach.labs import start_lab

    started = start_lab(name, state_root())
    with undone_on_closed_pipe(started.lab.sandbox):
        if json_:
            printer().json(started.to_json())
        else:
            view.render_started(started, printer())


@lab_app.command("stop")
@command
def lab_stop(name: LabArg, grace: GraceOpt = 5.0, json_: JsonOpt = False) -> None:
    """Stop a lab and verify every port it used refuses again. Exit 6 if something survived."""
    from sandbox.output import labs as view
    from sandbox.teach.labs import stop_lab

    report = stop_lab(name, state_root(), grace=grace)
    if json_:
        printer().json(report.to_json())
    else:
        view.render_stopped(report, printer())
    if not report.clean:
        raise typer.Exit(int(ExitCode.TEARDOWN_INCOMPLETE))

"""`sandbox status`, `logs` and `requests` without typer: plain command lines parsed as typer
would parse them (an option these parsers do not know sends the line to typer, which
words every usage error), then the same functions the typer commands call.

typer checks parameters with pydantic, so a command it runs pays for importing both:
`status` with 50 live probes took 0.25 s that way and takes 0.11 s here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import ExitCode
from sandbox.quick import bounded

if TYPE_CHECKING:
    from sandbox.output import Printer


def run_read(command: str, args: list[str]) -> int | None:
    """The exit code of `command` (status, logs or requests) with `args`; None when the
    command line is not plain enough for the parsers here (typer then runs it)."""
    if command == "status":
        shown = _parse_status(args)
        if shown is not None:
            return bounded(shown[1], lambda out: status_command(*shown, out))
    elif command == "logs":
        wanted = _parse_logs(args)
        if wanted is not None:
            return bounded(False, lambda out: logs_command(*wanted, out))
    elif command == "requests":
        asked = _parse_requests(args)
        if asked is not None:
            return bounded(asked.json, lambda out: requests_command(asked, out))
    return None


def _parse_status(args: list[str]) -> tuple[str | None, bool] | None:
    """(name, json) for a plain `status [NAME] [--json]` command line; None for anything else."""
    name: str | None = None
    json_ = False
    for arg in args:
        if arg == "--json":
            json_ = True
        elif not arg.startswith("-") and name is None:
            name = arg
        else:
            return None
    return name, json_


def status_command(name: str | None, json_: bool, out: Printer) -> int:
    """The work of `sandbox status` and what it prints; the exit code (5 when a service is
    not ready, or the sandbox NAME does not run)."""
    import asyncio

    from sandbox.output import lifecycle as view
    from sandbox.runtime.manage import statuses
    from sandbox.runtime.state import state_root

    found = asyncio.run(statuses(state_root(), name))
    if json_:
        out.json({"sandboxes": found})
    else:
        view.statuses(out, found, name)
    if any(not sandbox.get("ok", True) for sandbox in found) or (name and not found):
        return int(ExitCode.NOT_READY)
    return 0


def _parse_logs(args: list[str]) -> tuple[str, str | None, bool, int] | None:
    """(name, service, follow, tail) for a plain `logs NAME [SERVICE] [-f] [--tail N]`; None
    for anything else."""
    names: list[str] = []
    follow, tail = False, 50
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-f", "--follow"):
            follow = True
        elif arg == "--tail" or arg.startswith("--tail="):
            value = arg.partition("=")[2] if "=" in arg else (rest.pop(0) if rest else "")
            if not value.lstrip("-").isdigit():
                return None
            tail = int(value)
        elif not arg.startswith("-") and len(names) < 2:
            names.append(arg)
        else:
            return None
    if not names:
        return None
    return names[0], names[1] if len(names) > 1 else None, follow, tail


def logs_command(name: str, service: str | None, follow: bool, tail: int, out: Printer) -> int:
    """The work of `sandbox logs` and what it prints; the exit code."""
    from sandbox.output import lifecycle as view
    from sandbox.runtime.manage import last_run_ended, read_logs
    from sandbox.runtime.state import state_root

    ended = last_run_ended(state_root(), name)
    if ended is not None:
        view.last_run_note(out, name, ended)
    lines = read_logs(state_root(), name, service, tail=tail, follow=follow)
    try:
        for svc, text in lines:
            out.service_line(svc, text)
    finally:
        lines.close()  # closes the log files now, not when the generator is collected
    return 0


class RequestsLine(NamedTuple):
    """A plain `sandbox requests NAME [SERVICE] [--json] [-f] [--method M] [--path P]`."""

    name: str
    service: str | None = None
    json: bool = False
    follow: bool = False
    method: str | None = None
    path: str | None = None


def _parse_requests(args: list[str]) -> RequestsLine | None:
    """The `requests` command line as typer would parse it; None for anything else."""
    names: list[str] = []
    flags = {"--json": False, "--follow": False}
    values: dict[str, str | None] = {"--method": None, "--path": None}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        option, equals, value = arg.partition("=")
        if arg in ("-f", "--follow", "--json"):
            flags["--follow" if arg == "-f" else arg] = True
        elif option in values:
            if not equals:
                if not rest or rest[0].startswith("-"):
                    return None
                value = rest.pop(0)
            values[option] = value
        elif not arg.startswith("-") and len(names) < 2:
            names.append(arg)
        else:
            return None
    if not names:
        return None
    service = names[1] if len(names) > 1 else None
    return RequestsLine(names[0], service, flags["--json"], flags["--follow"],
                        values["--method"], values["--path"])  # fmt: skip


def requests_command(line: RequestsLine, out: Printer) -> int:
    """The work of `sandbox requests` and what it prints; the exit code."""
    from sandbox.output import requests as journal_view
    from sandbox.runtime.requests_feed import requests_feed
    from sandbox.runtime.state import state_root

    feed = requests_feed(
        state_root(), line.name, line.service,
        method=line.method, path=line.path, follow=line.follow,
    )  # fmt: skip
    if not line.follow:
        entries = list(feed)
        if line.json:
            journal_view.requests_json(out, entries)
        else:
            journal_view.requests_table(out, entries)
        return 0
    if not line.json:
        journal_view.stream_header(out)
    for entry in feed:
        if line.json:
            journal_view.request_json_line(out, entry)
        else:
            journal_view.stream_row(out, entry)
    return 0

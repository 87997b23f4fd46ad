"""The `sandbox` entry point: `--help`, `down`, `status`, `logs`, `requests` and `up -d`
answered without loading typer, the rest by it.

typer takes about 60 ms to import here, and loads pydantic to run any command: more than
`sandbox --help` may take in all, and a tax on every `down`. `sandbox --help` prints the
text typer would (kept in sandbox/help_text.py, checked against typer by the tests);
`sandbox down NAME|--all [--grace S] [--json]` runs the same function as the typer command,
and so do plain `status`, `logs` and `requests` command lines (quick_read.py).
`sandbox up PROFILE -d [...]` finds the file and the name it gives itself, and starts the
supervisor at once: the supervisor loads and validates the profile while this process
waits, instead of both doing it one after the other (about 0.3 s of every `up -d`).
Anything else, or anything these do not recognise, goes to typer, which also words every
usage error.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import ExitCode, SandboxError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.output import Printer
    from sandbox.runtime.launch import Launch

_HELP_WIDTH = 80  # click wraps help at min(terminal width, 80): the same text from 80 up


def main(prog_name: str | None = None) -> None:
    """`prog_name`: how usage and help name the program (default: as click guesses it)."""
    args = sys.argv[1:]
    if args == ["--help"] and _print_help(prog_name or _prog()):
        return
    if args[:1] == ["down"]:
        parsed = _parse_down(args[1:])
        if parsed is not None:
            sys.exit(run_down(*parsed))
    if args[:1] in (["status"], ["logs"], ["requests"]):
        from sandbox.quick_read import run_read

        code = run_read(args[0], args[1:])
        if code is not None:
            sys.exit(code)
    if args[:1] == ["up"]:
        up = _parse_up(args[1:])
        if up is not None:
            code = run_up(up)
            if code is not None:
                sys.exit(code)
    if args[:1] == ["probe"]:
        from sandbox.quick_probe import run_probe

        code = run_probe(args[1:])
        if code is not None:
            sys.exit(code)
    from sandbox.cli import main as typer_main

    typer_main(prog_name=prog_name)


def _prog() -> str:
    # How click names the program in "Usage:": the script's name, or `python -m sandbox`.
    main_module = sys.modules.get("__main__")
    if getattr(main_module, "__package__", None) in (None, ""):
        return os.path.basename(sys.argv[0])
    return "python -m sandbox"


def _print_help(prog: str) -> bool:
    import shutil

    if shutil.get_terminal_size().columns < _HELP_WIDTH:
        return False
    from sandbox.help_text import MAIN_HELP

    try:
        sys.stdout.write(MAIN_HELP.replace("{prog}", prog, 1))
        sys.stdout.flush()
    except BrokenPipeError:  # `sandbox --help | head`
        sys.exit(quiet_pipe())
    return True


def _parse_down(args: list[str]) -> tuple[str | None, bool, float, bool] | None:
    """(name, all, grace, json) for a plain `down` command line; None for anything else."""
    name: str | None = None
    all_ = json_ = False
    grace = 5.0
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--all":
            all_ = True
        elif arg == "--json":
            json_ = True
        elif arg == "--grace" or arg.startswith("--grace="):
            value = arg.partition("=")[2] if "=" in arg else (rest.pop(0) if rest else "")
            try:
                grace = float(value)
            except ValueError:
                return None
        elif not arg.startswith("-") and name is None:
            name = arg
        else:
            return None
    return name, all_, grace, json_


class UpLine(NamedTuple):  # not a dataclass: `dataclasses` costs 14 ms to import
    """A plain `sandbox up PROFILE -d` command line, as typer would have parsed it."""

    profile: str
    wait_timeout: float = 30.0
    on_conflict: str = "fail"
    name: str | None = None
    request_log: bool = True
    json: bool = False


_UP_VALUES = ("--wait-timeout", "--on-conflict", "--name")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def _parse_up(args: list[str]) -> UpLine | None:
    """The `up -d` line `args` spell; None for anything else (no -d, an unknown or repeated
    option, a value typer would refuse): typer then parses and words it."""
    from sandbox.profile.durations import parse_duration

    values: dict[str, str] = {}
    flags: set[str] = set()
    profile: str | None = None
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        option, eq, value = arg.partition("=")
        if option in _UP_VALUES and option not in values:
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            values[option] = value
        elif arg in ("-d", "--detach", "--json", "--no-request-log") and arg not in flags:
            flags.add("-d" if arg == "--detach" else arg)
        elif not arg.startswith("-") and profile is None:
            profile = arg
        else:
            return None
    if profile is None or "-d" not in flags:
        return None
    name = values.get("--name")
    on_conflict = values.get("--on-conflict", "fail")
    if (name is not None and not _NAME.fullmatch(name)) or on_conflict not in _STRATEGIES:
        return None
    try:
        timeout = parse_duration(values.get("--wait-timeout", "30s"))
    except ValueError:
        return None
    return UpLine(
        profile, timeout, on_conflict, name, "--no-request-log" not in flags, "--json" in flags
    )


_STRATEGIES = ("fail", "next-address", "next-port")  # plan.ON_CONFLICT_CHOICES, checked by a test


def run_up(line: UpLine) -> int | None:
    """`sandbox up PROFILE -d`: the exit code; None when the profile's file or name is not
    plain enough to find here (typer's `up` then does it all, as before).

    Prints and reports errors as the typer command does.
    """
    from sandbox.profile.finder import find_profile, peek_name

    try:
        path = find_profile(line.profile)
    except SandboxError:
        return None  # typer's `up` words it
    profile_name = peek_name(path)
    if profile_name is None:
        return None
    # The supervisor starts before anything that prints is imported: those imports then
    # run beside its start, on the other core, instead of before it.
    try:
        started = _launch(line, path, profile_name)
    except BaseException as exc:
        failure = exc

        def fail(out: Printer) -> int:
            raise failure

        return bounded(line.json, fail)
    return bounded(line.json, lambda out: up_command(line, started, out))


def _launch(line: UpLine, path: Path, profile_name: str) -> Launch:
    from sandbox.runtime.launch import Launch, request_log_default
    from sandbox.runtime.private import state_root

    return Launch(
        str(path),
        name=line.name or profile_name,
        state_root=state_root(),
        on_conflict=line.on_conflict,
        wait_timeout=line.wait_timeout,
        request_log=line.request_log and request_log_default(),
        expect_name=profile_name,
    )


def up_command(line: UpLine, started: Launch, out: Printer) -> int:
    """Wait for the supervisor `started` and print what the typer `up -d` prints. Raises
    SandboxError (a ProfileError from the supervisor's validation included)."""
    # Imported while the supervisor starts.
    from sandbox.output import lifecycle as view
    from sandbox.output import progress
    from sandbox.runtime.launch import ready_status

    bar = progress.Progress(out, f"{started.name}: starting")
    try:
        ready = started.ready(bar.update)
    finally:
        bar.done()
    status = ready_status(ready)
    with undone_on_closed_pipe(status["name"]):
        if line.json:
            out.json(status)
        else:
            progress.moves(out, status["moves"], line.on_conflict)
            view.detached(out, status)
    return 0


@contextlib.contextmanager
def undone_on_closed_pipe(name: str) -> Iterator[None]:
    """If stdout's reader goes away before it learns that a sandbox started (`up -d | head`,
    `lab start | head`), stop the sandbox again: nobody knows that it runs."""
    try:
        yield
    except BrokenPipeError:
        import asyncio

        from sandbox.runtime.manage import down_many
        from sandbox.runtime.private import state_root

        asyncio.run(down_many(state_root(), name, grace=5.0))
        raise


def run_down(name: str | None, all_: bool, grace: float, json_: bool) -> int:
    """`sandbox down`: stop one recorded sandbox or all, print the outcome; the exit code."""
    return bounded(json_, lambda out: down_command(name, all_, grace, json_, out))


def bounded(json_: bool, work: Callable[[Printer], int]) -> int:
    """`work`'s exit code, its errors reported as the typer commands report them
    (sandbox.cli.command): a message and an exit code, never a traceback."""
    from sandbox.output import Printer

    out = Printer()
    try:
        return work(out)
    except BrokenPipeError:
        return quiet_pipe()
    except SandboxError as exc:
        _report(out, exc, json_)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        out.note("interrupted")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        hint = "Run again with --debug for the traceback, and report it if it repeats."
        _report(out, SandboxError(f"unexpected error: {type(exc).__name__}: {exc}", hint), json_)
        return int(ExitCode.UNEXPECTED)


def _report(out: Printer, exc: SandboxError, json_: bool) -> None:
    try:
        if json_:
            out.error_json(exc)
        else:
            out.error(exc)
    except BrokenPipeError:
        quiet_pipe()


def quiet_pipe() -> int:
    """stdout's reader is gone (EPIPE): point stdout at /dev/null so the interpreter's last
    flush does not complain, and return the exit code for it (141, as for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
    return int(ExitCode.BROKEN_PIPE)


def down_command(name: str | None, all_: bool, grace: float, json_: bool, out: Printer) -> int:
    """The work of `sandbox down` and what it prints; the exit code. Raises SandboxError."""
    import asyncio

    from sandbox.output import lifecycle as view
    from sandbox.runtime.manage import down_many, sandbox_name
    from sandbox.runtime.state import state_root

    if (name is None) == (not all_):
        raise UsageError(
            "name a sandbox, or pass --all (not both).", "`sandbox status` lists them."
        )
    if name is not None:
        name = sandbox_name(state_root(), name)  # a profile's path names its sandbox
    reports = asyncio.run(down_many(state_root(), None if all_ else name, grace=grace))
    if json_:
        gone = {"not_running": name} if name is not None and not reports else {}
        out.json({"sandboxes": [r.to_json() for r in reports], **gone})
    else:
        view.down_reports(out, reports, name)
    if any(not r.clean for r in reports):
        return int(ExitCode.TEARDOWN_INCOMPLETE)
    return 0

"""The `sandbox` entry point: `--help` and `down` answered without loading typer, the rest by it.

typer takes about 60 ms to import here, and loads pydantic to run any command: more than
`sandbox --help` may take in all, and a tax on every `down`. `sandbox --help` prints the
text typer would (kept in sandbox/help_text.py, checked against typer by the tests);
`sandbox down NAME|--all [--grace S] [--json]` runs the same function as the typer command.
Anything else, or anything these two do not recognise, goes to typer, which also words
every usage error.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from sandbox.errors import ExitCode, SandboxError, UsageError

if TYPE_CHECKING:
    from sandbox.output import Printer

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


def run_down(name: str | None, all_: bool, grace: float, json_: bool) -> int:
    """`sandbox down`: stop one recorded sandbox or all, print the outcome; the exit code.

    Errors are reported as the typer commands report them (sandbox.cli.command).
    """
    from sandbox.output import Printer

    out = Printer()
    try:
        return down_command(name, all_, grace, json_, out)
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

"""The command line: the typer app, its common options, and the one error boundary.

Commands live in one module per group (profiles, diagnose, lifecycle, teach). Heavy
libraries (asyncio, aiohttp, psutil, pydantic) are imported inside the commands that need
them, so `sandbox --help` stays fast.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from sandbox.errors import ExitCode, SandboxError, UsageError
from sandbox.output import Printer
from sandbox.quick import quiet_pipe

if TYPE_CHECKING:
    from sandbox.profile.models import Profile

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help=(
        "Bring up a multi-service setup on loopback addresses, offline, in a second.\n\n"
        "Every service gets its own address in 127.0.0.0/8 (or ::1); port conflicts are "
        "found and explained before anything serves; `down` verifies nothing is left.\n\n"
        "Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 invalid profile, 4 port conflict, "
        "5 not ready / probe failed, 6 teardown incomplete, 130 interrupted, "
        "141 output pipe closed, 143 terminated (SIGTERM)."
    ),
)
_state: dict[str, Any] = {"debug": False}


def _profile_names(incomplete: str) -> list[str]:
    """Shell completion: the profiles found by name (a path completes as a file)."""
    from sandbox.profile.loader import discover

    return [found.name for found in discover() if found.name.startswith(incomplete)]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
ProfileArg = Annotated[
    str, typer.Argument(help="A profile name (looked up in ./profiles, $SANDBOX_PROFILE_PATH, "
                        "then the bundled ones) or a path to a YAML file.",
                        autocompletion=_profile_names)
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
        as_json = bool(kwargs.get("json_"))
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            # `sandbox ports | head`: the reader has what it wanted. Say nothing more.
            raise typer.Exit(quiet_pipe()) from None
        except SandboxError as exc:
            if _state["debug"]:
                raise
            report(exc, as_json)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            printer().note("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if _state["debug"]:
                raise
            report(
                SandboxError(
                    f"unexpected error: {type(exc).__name__}: {exc}",
                    "Run again with --debug for the traceback, and report it if it repeats.",
                ),
                as_json,
            )
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None

    return wrapper


def report(exc: SandboxError, as_json: bool) -> None:
    """An error as a sentence and a hint on stderr, or as one JSON object under --json."""
    try:
        if as_json:
            printer().error_json(exc)
        else:
            printer().error(exc)
    except BrokenPipeError:
        quiet_pipe()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def conflict_strategy(value: str) -> Any:
    from sandbox.plan import ON_CONFLICT_CHOICES

    if value not in ON_CONFLICT_CHOICES:
        raise UsageError(
            f"--on-conflict {value!r} is not one of: {', '.join(ON_CONFLICT_CHOICES)}.",
        )
    return value


def load(ref: str) -> Profile:
    from sandbox.profile.loader import load_profile

    return load_profile(ref)


def state_root() -> Path:
    from sandbox.runtime.state import state_root as root

    return root()


def main(prog_name: str | None = None) -> None:
    try:
        app(prog_name=prog_name)
    except KeyboardInterrupt:  # Ctrl-C while typer parses, before a command's boundary
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:  # --help or a usage message into a closed pipe
        sys.exit(quiet_pipe())


# The command groups register themselves on `app` when imported, in the order `--help`
# lists them.
for _group in ("profiles", "diagnose", "lifecycle", "teach", "io"):
    importlib.import_module(f"sandbox.cli.{_group}")

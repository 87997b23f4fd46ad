"""Commands about profiles: `profiles`, `validate`, `schema`."""

from __future__ import annotations

from typing import Annotated

import typer

from sandbox.cli import JsonOpt, app, command, load, printer
from sandbox.errors import ExitCode, SandboxError
from sandbox.output import profiles as view


@app.command()
@command
def profiles(json_: JsonOpt = False) -> None:
    """List the profiles that can be found by name, with where each comes from."""
    from sandbox.profile.loader import discover

    found = discover()
    out = printer()
    if json_:
        out.json({"profiles": [view.found_json(f) for f in found]})
    else:
        view.found(out, found)


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
            profile = load(ref)
        except ProfileError as exc:
            code = int(exc.exit_code)
            results.append(
                {"profile": ref, "valid": False, "problems": exc.problems, "exit_code": code}
            )
            worst = max(worst, exc.exit_code)
            if not json_:
                out.error(exc)
            continue
        except SandboxError as exc:
            code = int(exc.exit_code)
            results.append(
                {"profile": ref, "valid": False, "problems": [exc.message], "exit_code": code}
            )
            worst = max(worst, exc.exit_code)
            if not json_:
                out.error(exc)
            continue
        results.append({"profile": ref, "valid": True, "source": profile.source, "problems": []})
        if not json_:
            view.valid(out, profile.source or ref, len(profile.services))
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

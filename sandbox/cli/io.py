"""Commands that bring other tools' files in and take a profile out: `import`, `export`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sandbox.cli import JsonOpt, ProfileArg, app, command, load, printer
from sandbox.errors import SandboxError, StrictError, UsageError
from sandbox.output import io as view

if TYPE_CHECKING:
    from sandbox.io.report import ImportResult, Loss

FORMATS = ("openapi", "wiremock", "mountebank", "har", "compose")
ENGINES = ("compose", "k8s")

StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail (exit 3, nothing written) if anything is lost.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite what is already there.")]


@app.command("import")
@command
def import_(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=f"One of: {', '.join(FORMATS)}.")],
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="The file (or WireMock folder) to import.")
    ],
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Where to write the profile (./profiles/NAME.yaml)."),
    ] = None,
    strict: StrictOpt = False,
    json_: JsonOpt = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="openapi: seed of generated examples (0).")
    ] = None,
    keep_secrets: Annotated[
        bool, typer.Option("--keep-secrets", help="har: keep Authorization, Cookie, API keys.")
    ] = False,
    validate_requests: Annotated[
        bool,
        typer.Option(
            "--validate-requests", help="openapi: answer 400 to requests that do not fit."
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="wiremock: the stub's port (8080)."),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Turn another tool's stubs or stack into a profile, with a report of every loss.

    Writes the profile (and any files it needs beside it) and NAME.import-report.txt
    (.json with --json). Exit 3 for an unreadable source, or with --strict when anything
    was dropped or approximated.
    """
    if fmt not in FORMATS:
        raise UsageError(f"cannot import {fmt!r}: the formats are {', '.join(FORMATS)}.")
    _refuse_options(
        fmt,
        {
            "--seed": ("openapi", seed is not None),
            "--validate-requests": ("openapi", validate_requests),
            "--keep-secrets": ("har", keep_secrets),
            "--port": ("wiremock", port is not None),
        },
    )
    path = Path(source)
    result = _run_importer(fmt, path, seed=seed, validate=validate_requests,
                           keep_secrets=keep_secrets, port=port)  # fmt: skip
    if strict and result.losses:
        raise StrictError(
            f"the import of {source} is not exact ({_count(result.losses)}); with --strict "
            "nothing was written:\n" + _listed(result.losses),
            "Run without --strict to write it anyway; the report lists every loss.",
        )
    # The name only names a file: never a path of its own, whatever the source said.
    name = Path(str(result.profile.get("name") or "")).name or path.stem or "imported"
    target = _target(output, name)
    report = target.with_name(f"{target.stem}.import-report.{'json' if json_ else 'txt'}")
    planned = [target, report, *(target.parent / rel for rel in result.files)]
    if not force:
        _refuse_existing(planned)
    from sandbox.io.write import write_result

    written = write_result(result, target)
    _check_valid(target)
    losses = [view.loss_json(loss) for loss in result.losses]
    if json_:
        report.write_text(json.dumps({"source": source, "format": fmt, "losses": losses},
                                     indent=2) + "\n", encoding="utf-8")  # fmt: skip
    else:
        report.write_text(view.report_text(source, fmt, result.losses), encoding="utf-8")
    out = printer()
    if json_:
        out.json(
            {
                "profile": str(target),
                "name": result.profile.get("name"),
                "files": [str(p) for p in written],
                "report": str(report),
                "losses": losses,
            }
        )
    else:
        view.imported(out, target, written[1:], report, result.losses)


@app.command("export")
@command
def export(
    engine: Annotated[str, typer.Argument(metavar="ENGINE", help="compose or k8s.")],
    profile: ProfileArg,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="The folder to write into (./NAME-ENGINE)."),
    ] = None,
    strict: StrictOpt = False,
    json_: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Write a compose file or Kubernetes manifests in which each stub runs the sandbox engine.

    Command services need an image of their own: they are reported, not exported (with
    --strict that fails with exit 3 and nothing written).
    """
    if engine not in ENGINES:
        raise UsageError(f"cannot export to {engine!r}: the engines are {', '.join(ENGINES)}.")
    loaded = load(profile)
    folder = Path(output) if output else Path(f"{loaded.name}-{engine}")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder.", "Name a folder with -o DIR.")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise UsageError(
            f"{folder} is not empty; export refuses to write into it.",
            "Name an empty or new folder with -o DIR, or pass --force to overwrite.",
        )
    from sandbox.io.exporters.compose import export_compose
    from sandbox.io.exporters.k8s import export_k8s

    run = export_compose if engine == "compose" else export_k8s
    result = run(Path(loaded.source or profile), folder, strict=strict)
    out = printer()
    if json_:
        out.json(
            {
                "engine": engine,
                "profile": loaded.source,
                "folder": str(folder),
                "files": [str(p) for p in result.written],
                "losses": [view.loss_json(loss) for loss in result.losses],
            }
        )
    else:
        view.exported(out, engine, folder, result.written, result.losses)


def _refuse_options(fmt: str, given: dict[str, tuple[str, bool]]) -> None:
    for option, (applies_to, used) in given.items():
        if used and fmt != applies_to:
            raise UsageError(
                f"{option} applies to `import {applies_to}` only, not to `import {fmt}`.",
                f"Leave {option} out.",
            )


def _run_importer(
    fmt: str, source: Path, *, seed: int | None, validate: bool, keep_secrets: bool,
    port: int | None,
) -> ImportResult:  # fmt: skip
    if fmt == "openapi":
        from sandbox.io.importers.openapi import import_openapi

        return import_openapi(source, seed=seed or 0, validate_requests=validate)
    if fmt == "wiremock":
        from sandbox.io.importers.wiremock import import_wiremock

        return import_wiremock(source) if port is None else import_wiremock(source, port=port)
    if fmt == "mountebank":
        from sandbox.io.importers.mountebank import import_mountebank

        return import_mountebank(source)
    if fmt == "har":
        from sandbox.io.importers.har import import_har

        return import_har(source, keep_secrets=keep_secrets)
    from sandbox.io.importers.compose import import_compose

    return import_compose(source)


def _target(output: str | None, name: str) -> Path:
    """-o as given (a folder, existing or ending in /, gets NAME.yaml); ./profiles/NAME.yaml."""
    if output is None:
        return Path("profiles") / f"{name}.yaml"
    path = Path(output)
    if output.endswith(("/", "\\")) or path.is_dir():
        return path / f"{name}.yaml"
    return path


def _refuse_existing(paths: Sequence[Path]) -> None:
    there = [str(p) for p in paths if p.exists()]
    if there:
        raise UsageError(
            f"import refuses to overwrite {', '.join(there)}.",
            "Pass --force to overwrite, or name another profile with -o PROFILE.",
        )


def _check_valid(target: Path) -> None:
    """The written profile must load; if it does not, that is a bug of the importer."""
    from sandbox.errors import ProfileError
    from sandbox.profile.loader import load_profile

    try:
        load_profile(target)
    except ProfileError as exc:
        raise SandboxError(
            f"bug: the imported profile {target} does not validate:\n"
            + "\n".join(f"  {p}" for p in exc.problems),
            "It was left there for a bug report; please report it with the source file.",
        ) from None


def _count(losses: Sequence[Loss]) -> str:
    return f"{len(losses)} loss{'' if len(losses) == 1 else 'es'}"


def _listed(losses: Sequence[Loss]) -> str:
    return "\n".join(f"  {loss.kind}  {loss.location}: {loss.what}" for loss in losses)

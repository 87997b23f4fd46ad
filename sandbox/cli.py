"""The command line: one function per command, and the only place that exits."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def version() -> None:
    """Print the version."""
    from sandbox import __version__

    typer.echo(__version__)


def main() -> None:
    app()

"""Views of imports and exports: what was written, and every loss as a table or as JSON."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from sandbox.io.report import Loss
from sandbox.output.printer import Printer


def loss_json(loss: Loss) -> dict[str, str]:
    return {"kind": str(loss.kind), "location": loss.location, "what": loss.what}


def losses_table(out: Printer, losses: Sequence[Loss]) -> None:
    """Every loss as one row: kind, location in the source, what the result does instead."""
    if not losses:
        out.line("Nothing was dropped or approximated: the result is exact.")
        return
    out.table(
        ["KIND", "LOCATION", "WHAT"],
        [(out.paint(str(loss.kind), "yellow"), loss.location, loss.what) for loss in losses],
    )


def report_text(source: str, fmt: str, losses: Sequence[Loss]) -> str:
    """The import report written beside a profile: a header line, then the losses table."""
    buffer = io.StringIO()
    out = Printer(out=buffer, err=buffer, colour=False)
    count = len(losses)
    out.line(f"Import report: {source} ({fmt}), {count} loss{'' if count == 1 else 'es'}.")
    out.line()
    losses_table(out, losses)
    return buffer.getvalue()


def imported(
    out: Printer, profile: Path, files: Sequence[Path], report: Path, losses: Sequence[Loss]
) -> None:
    """`import`: the profile and extra files written, then every loss."""
    extra = len(files)
    more = f" and {extra} file{'' if extra == 1 else 's'} beside it" if extra else ""
    out.ok(f"wrote {profile}{more}; it validates")
    losses_table(out, losses)
    out.note(f"report: {report}")


def exported(
    out: Printer, fmt: str, folder: Path, files: Sequence[Path], losses: Sequence[Loss]
) -> None:
    """`export`: every file written, then every loss."""
    out.ok(f"exported to {fmt} in {folder}:")
    for path in files:
        out.line(f"  {path}")
    losses_table(out, losses)

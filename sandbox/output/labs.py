"""`sandbox lab` for people: the list of labs, a started lab's steps, what `lab stop` did."""

from __future__ import annotations

from sandbox.output.lifecycle import services_table
from sandbox.output.printer import Printer
from sandbox.runtime.teardown import DownReport
from sandbox.teach.labs import LabEntry, LabStatus


def render_list(entries: list[LabEntry], out: Printer) -> None:
    """The labs as a table: name, state, endpoints, what it shows; then how to start one."""
    colours = {"running": "green", "stale": "red", "stopped": "dim"}
    out.table(
        ["LAB", "STATE", "LISTENS ON", "WHAT IT SHOWS"],
        [
            (e.lab.name, out.paint(e.state, colours[e.state]), " ".join(e.endpoints), e.lab.title)
            for e in entries
        ],
    )
    out.note("start one with `sandbox lab start NAME`; the steps are printed then")


def render_started(started: LabStatus, out: Printer) -> None:
    """The lab's services (where, answering?) and its instructions."""
    lab = started.lab
    out.line(out.paint(f"lab {lab.name}: {lab.title}", "bold"))
    services_table(out, started.status["services"])
    out.line()
    for line in started.instructions.splitlines():
        out.line(line)
    out.line()
    out.line(f"Stop it with `sandbox lab stop {lab.name}` (or `sandbox down --all`).")


def render_stopped(report: DownReport, out: Printer) -> None:
    """What `lab stop` did: stopped and verified, not running, or what survived."""
    lab = report.name.removeprefix("lab-")
    if not report.stopped and not report.survivors and not report.supervisor_was_alive:
        out.line(f'lab "{lab}" is not running.')
        return
    if report.clean:
        out.ok(
            f"lab {lab}: stopped {len(report.stopped)} services; every port refuses "
            f"connections ({report.seconds:.2f}s)"
        )
        return
    for survivor in report.survivors:
        out.warn(f"lab {lab}: {survivor}")

"""`sandbox hosts` for people: the marked block on stdout, what was done on stderr."""

from __future__ import annotations

from sandbox.output.printer import Printer
from sandbox.teach.hosts import HostsReport, block_lines


def render(report: HostsReport, out: Printer) -> None:
    """The block on stdout (ready for `| sudo tee -a /etc/hosts`), the sentences on stderr."""
    if report.action not in ("removed", "absent"):
        for line in block_lines(report.sandbox, report.entries):
            out.line(out.paint(line, "dim") if line.startswith("#") else line)
    for sentence in report.sentences:
        out.note(sentence)

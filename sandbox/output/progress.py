"""What `up` says while it starts: services ready so far (on a terminal) and what moved."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sandbox.output.printer import Printer


class Progress:
    """`starting 12/50 (1.4s)`, rewritten in place on stderr; silent unless stderr is a terminal.

    `done()` clears the line, so what follows starts on a clean line.
    """

    def __init__(
        self, out: Printer, label: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        isatty = getattr(out.err, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.out, self.label, self.clock = out, label, clock
        self.t0 = clock()
        self.shown = False

    def update(self, report: dict[str, Any]) -> None:
        """One supervisor report: {"ready": n, "total": m, "service": name}."""
        if not self.enabled:
            return
        seconds = self.clock() - self.t0
        text = (
            f"{self.label}: {report['ready']}/{report['total']} ready "
            f"({seconds:.1f}s, last: {report['service']})"
        )
        self.out.err.write("\r\x1b[2K" + self.out.paint(text, "dim"))
        self.out.err.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.out.err.write("\r\x1b[2K")
            self.out.err.flush()
            self.shown = False


def moves(out: Printer, moved: Sequence[dict[str, Any]], strategy: str) -> None:
    """Each service that `--on-conflict` moved, and where to, on stderr: the profile's address
    for it now reaches whoever holds it."""
    for move in moved:
        before = _hostport(move["from"])
        after = _hostport(move["to"])
        out.warn(
            f"{move['service']} moved from {before} to {after} (--on-conflict {strategy}): "
            f"{before} is {move['because']}; clients must use {after}"
        )


def _hostport(where: dict[str, Any]) -> str:
    address = str(where["address"])
    return f"[{address}]:{where['port']}" if ":" in address else f"{address}:{where['port']}"

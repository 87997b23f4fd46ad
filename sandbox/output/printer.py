"""The Printer: the one owner of stdout and stderr, with tables, colour and JSON primitives."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from sandbox.errors import SandboxError, error_to_json

_COLOURS = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "bold": "1",
    "dim": "2",
}
_SERVICE_COLOURS = ("cyan", "magenta", "green", "yellow", "blue")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible_width(text: str) -> int:
    """How many columns `text` takes on a terminal: colour codes take none."""
    return len(_ANSI.sub("", text))


def pad(text: str, width: int) -> str:
    """`text` padded with spaces to `width` visible columns (ljust counts colour codes)."""
    return text + " " * max(0, width - visible_width(text))


def colour_wanted(stream: IO[str], env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass
class Printer:
    """Owns stdout and stderr; everything the user sees goes through one of these."""

    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)
    colour: bool | None = None
    _service_colours: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.colour is None:
            self.colour = colour_wanted(self.out)

    # -- primitives ---------------------------------------------------------------------

    def paint(self, text: str, *styles: str) -> str:
        if not self.colour or not styles:
            return text
        codes = ";".join(_COLOURS[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """Progress and side remarks go to stderr, so stdout stays clean for pipes."""
        self.err.write(self.paint(text, "dim") + "\n")
        self.err.flush()

    def json(self, data: Any) -> None:
        self.out.write(json.dumps(data, indent=2, default=str) + "\n")
        self.out.flush()

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        cells = [[str(h) for h in headers], *([_cell(c) for c in row] for row in rows)]
        widths = [max(visible_width(row[i]) for row in cells) for i in range(len(headers))]
        for n, row in enumerate(cells):
            text = "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip()
            self.line(self.paint(text, "bold") if n == 0 else text)

    # -- messages -----------------------------------------------------------------------

    def ok(self, text: str) -> None:
        self.line(self.paint("✓ ", "green") + text)

    def warn(self, text: str) -> None:
        self.err.write(self.paint("! ", "yellow") + text + "\n")
        self.err.flush()

    def error(self, exc: SandboxError) -> None:
        """An expected problem: its sentence, then the hint, never a traceback."""
        text = str(exc) if exc.hint is None else exc.message
        first, _, rest = text.partition("\n")
        self.err.write(self.paint("error: ", "red", "bold") + first + "\n")
        if rest:
            self.err.write(rest + "\n")
        if exc.hint:
            self.err.write(self.paint("hint: ", "yellow") + exc.hint + "\n")
        self.err.flush()

    def error_json(self, exc: SandboxError) -> None:
        """An expected problem for scripts (under --json): error, message, hint, exit_code."""
        self.json(error_to_json(exc))

    def service_line(self, service: str, text: str, width: int = 10) -> None:
        """One line of the interleaved foreground log, prefixed with the service's name."""
        colour = self._service_colours.setdefault(
            service, _SERVICE_COLOURS[len(self._service_colours) % len(_SERVICE_COLOURS)]
        )
        self.line(self.paint(f"{service:<{width}} |", colour) + " " + text)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)

"""A place in an import's source, to which losses are reported: `FILE#/json/pointer`."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.io.importers._common import pointer
from sandbox.io.report import ImportResult


@dataclass(frozen=True)
class Where:
    """A file and a JSON pointer into it, plus the result losses go to."""

    result: ImportResult
    file: str
    path: tuple[object, ...] = ()

    def at(self, *parts: object) -> Where:
        return Where(self.result, self.file, (*self.path, *parts))

    @property
    def location(self) -> str:
        return f"{self.file}#{pointer(*self.path)}" if self.path else self.file

    def drop(self, what: str) -> None:
        self.result.drop(self.location, what)

    def approximate(self, what: str) -> None:
        self.result.approximate(self.location, what)

"""The result of an import: the profile as plain data, and every field dropped or approximated."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class LossKind(StrEnum):
    DROPPED = "dropped"  # the field has no counterpart; the profile ignores it
    APPROXIMATED = "approximated"  # the field maps to something close, not the same


@dataclass(frozen=True)
class Loss:
    """One field of the source that did not map exactly.

    `location` points into the source: a file path, then a JSON-pointer-like path
    (`mappings/orders.json#/request/bodyPatterns/0`), or `FILE:LINE` where lines are known.
    """

    location: str
    kind: LossKind
    what: str  # a sentence: what the source said, and what the profile does instead


class LossLog:
    """Recording losses: what an import or an export could not carry over exactly."""

    losses: list[Loss]

    def drop(self, location: str, what: str) -> None:
        self.losses.append(Loss(location, LossKind.DROPPED, what))

    def approximate(self, location: str, what: str) -> None:
        self.losses.append(Loss(location, LossKind.APPROXIMATED, what))

    @property
    def lossless(self) -> bool:
        return not self.losses


@dataclass
class ImportResult(LossLog):
    """A profile as plain data (dict ready for YAML) plus the losses met on the way.

    `files` are extra files the profile refers to (for `file:` answers), keyed by a path
    relative to the profile's folder, written next to the profile by the CLI.
    """

    profile: dict[str, Any]
    losses: list[Loss] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)

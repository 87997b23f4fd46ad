"""The state one compose import builds up: the report, names, ports, and where things are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandbox.io.importers.compose_interpolate import Interpolator
from sandbox.io.importers.compose_ports import PortMapping
from sandbox.io.report import ImportResult


@dataclass
class ComposeContext:
    """What every part of the import reads and adds to, for one compose file."""

    source: Path
    interpolate: Interpolator
    result: ImportResult = field(default_factory=lambda: ImportResult(profile={}))
    replicas: dict[str, list[str]] = field(default_factory=dict)  # compose -> profile names
    ports: dict[str, list[PortMapping]] = field(default_factory=dict)
    targets: dict[str, set[int]] = field(default_factory=dict)  # every container port named
    main: dict[str, set[int]] = field(default_factory=dict)  # the container port it keeps

    def at(self, *parts: object) -> str:
        """A place in the source: `FILE#/services/api/ports/0`."""
        return f"{self.source}#/" + "/".join(str(p) for p in parts)

    def first_replicas(self) -> dict[str, str]:
        """Compose name -> the profile service a host reference points at."""
        return {c: names[0] for c, names in self.replicas.items() if names}

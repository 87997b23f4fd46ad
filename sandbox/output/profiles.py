"""Views of profiles: what `profiles` finds, and what `validate` says of each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sandbox.output.printer import Printer


def found_json(found: Any) -> dict[str, object]:
    return {
        "name": found.name,
        "path": str(found.path),
        "origin": found.origin,
        "description": found.description,
        "error": found.error,
    }


def found(out: Printer, entries: Sequence[Any]) -> None:
    """The profiles that can be found by name, with where each comes from."""
    if not entries:
        out.line("No profiles found (looked in ./profiles, $SANDBOX_PROFILE_PATH, bundled).")
        return
    out.table(
        ["NAME", "FROM", "DESCRIPTION"],
        [
            (f.name, f.origin, f.description if not f.error else f"INVALID: {f.error}")
            for f in entries
        ],
    )


def valid(out: Printer, shown: str, count: int) -> None:
    out.ok(f"{shown}: valid ({count} services)")
